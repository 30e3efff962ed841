// Learning-rate schedules: linear warmup, then constant, cosine with a floor,
// or warmup-stable-decay (WSD) with a linear or cosine cooldown.
#ifndef LIFECYCLE_SCHEDULE_H
#define LIFECYCLE_SCHEDULE_H

#include <cmath>
#include <stdexcept>
#include <string>

namespace llama {

struct LrSchedule {
    enum class Kind { Constant, Cosine, Wsd };
    enum class Shape { Linear, Cosine };  // WSD cooldown shape
    Kind kind = Kind::Cosine;
    Shape cooldown = Shape::Linear;
    double lr = 3e-4;     // peak
    double min_lr = 0.0;  // floor (cosine) or end of the cooldown (WSD)
    int warmup = 0;       // steps of linear warmup: step s < warmup gets lr * (s + 1) / warmup
    int total_steps = 1;  // cosine: the decay ends here
    int decay_start = 0;  // WSD: last step at the peak
    int decay_steps = 0;  // WSD: cooldown length; step decay_start + decay_steps reaches min_lr

    static Kind parse_kind(const std::string& s) {
        if (s == "constant") return Kind::Constant;
        if (s == "cosine") return Kind::Cosine;
        if (s == "wsd") return Kind::Wsd;
        throw std::invalid_argument("--schedule: '" + s + "' is not one of constant, cosine, wsd");
    }
    static Shape parse_shape(const std::string& s) {
        if (s == "linear") return Shape::Linear;
        if (s == "cosine") return Shape::Cosine;
        throw std::invalid_argument("--decay-shape: '" + s + "' is not one of linear, cosine");
    }

    // Learning rate of optimizer step `step` (counting from 1).
    double at(int step) const {
        if (warmup > 0 && step <= warmup) return lr * step / warmup;
        switch (kind) {
            case Kind::Constant:
                return lr;
            case Kind::Cosine: {
                double span = std::max(total_steps - warmup, 1);
                double progress = std::min(double(step - warmup) / span, 1.0);
                return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
            }
            case Kind::Wsd: {
                if (step <= decay_start) return lr;
                double progress = std::min(double(step - decay_start) / std::max(decay_steps, 1), 1.0);
                double frac = cooldown == Shape::Linear ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
                return min_lr + (lr - min_lr) * frac;
            }
        }
        return lr;
    }
};

}  // namespace llama

#endif  // LIFECYCLE_SCHEDULE_H
