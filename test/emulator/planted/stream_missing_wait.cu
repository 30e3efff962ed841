// Planted bug: a consumer on stream B reads what a producer on stream A writes,
// without cudaStreamWaitEvent. The emulator runs the two streams' work in an order
// chosen by EMU_SEED, so under some seeds the consumer runs first and the check
// fails; the twin (with the wait) passes under every seed.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void produce(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = float(i) * 0.5f;
}

__global__ void consume(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] + 1.0f;
}

int main() {
    const int n = 512;
    float *x, *y, h[n];
    CUDA_CHECK(cudaMalloc(&x, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&y, sizeof(h)));
    cudaStream_t a, b;
    cudaEvent_t produced;
    CUDA_CHECK(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&produced, cudaEventDisableTiming));
    produce<<<n / 128, 128, 0, a>>>(x, n);
    CUDA_CHECK_LAUNCH("produce");
    CUDA_CHECK(cudaEventRecord(produced, a));
#ifndef PLANTED_BUG
    CUDA_CHECK(cudaStreamWaitEvent(b, produced, 0));
#endif
    consume<<<n / 128, 128, 0, b>>>(x, y, n);
    CUDA_CHECK_LAUNCH("consume");
    CUDA_CHECK(cudaMemcpyAsync(h, y, sizeof(h), cudaMemcpyDeviceToHost, b));
    CUDA_CHECK(cudaStreamSynchronize(b));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (h[i] != float(i) * 0.5f + 1.0f) bad = 1;
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaEventDestroy(produced));
    CUDA_CHECK(cudaStreamDestroy(a));
    CUDA_CHECK(cudaStreamDestroy(b));
    CUDA_CHECK(cudaFree(x));
    CUDA_CHECK(cudaFree(y));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
