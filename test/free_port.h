// A TCP port for a test's rendezvous: below the kernel's ephemeral range
// (32768 and up), so no outgoing connection of this or another process holds
// it, and free right now. Each call moves on to another port.
#ifndef TEST_FREE_PORT_H
#define TEST_FREE_PORT_H

#include <stdexcept>
#include <unistd.h>

#include "parallel/tcp_group.h"

namespace testport {

inline int free_port() {
    static int next = 10000 + int(getpid() % 2000) * 10;
    for (int tries = 0; tries < 1000; ++tries) {
        const int port = next;
        next = next + 1 >= 32000 ? 10000 : next + 1;
        try {
            int bound = 0;
            close(llama::tcp_listen(port, 1, bound));
            return port;
        } catch (const std::runtime_error&) {  // taken: try the next one
        }
    }
    return 0;
}

}  // namespace testport

#endif  // TEST_FREE_PORT_H
