// A TCP port for a test's rendezvous: below the kernel's ephemeral range
// (32768 and up), so no outgoing connection of this or another process holds
// it, and free right now. Each call moves on to another port.
#ifndef TEST_FREE_PORT_H
#define TEST_FREE_PORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace testport {

inline int free_port() {
    static int next = 10000 + int(getpid() % 2000) * 10;
    for (int tries = 0; tries < 1000; ++tries) {
        const int port = next;
        next = next + 1 >= 32000 ? 10000 : next + 1;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_ANY);
        addr.sin_port = htons(uint16_t(port));
        const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        close(fd);
        if (ok) return port;
    }
    return 0;
}

}  // namespace testport

#endif  // TEST_FREE_PORT_H
