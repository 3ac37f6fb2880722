// Who listens on an instance's address. A health probe that connects to 127.x.y.z:port only
// proves that *something* answers there; another program (a second daemon's instance, a
// stray server) may hold that address. Before an instance is first declared healthy, the
// launcher checks that the listening socket belongs to a process of the instance: the
// socket's inode from sock_diag (else /proc/net/tcp{,6}), then the instance's processes'
// descriptors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth {

// The inode of the socket listening on `host`:`port` in the /proc/net/tcp and /proc/net/tcp6
// tables (`tcp`, `tcp6`): the exact IPv4 address first, else the wildcard one (0.0.0.0, ::)
// the kernel would hand the connection to. nullopt if none listens there.
std::optional<uint64_t> ListenerInode(std::string_view tcp, std::string_view tcp6,
                                      const std::string& host, int port);

// The same, asked of the kernel over sock_diag (the way ss does), which walks only the
// listening sockets. `asked` false: sock_diag is not available and nothing was learnt.
std::optional<uint64_t> ListenerInodeFromKernel(const std::string& host, int port, bool* asked);

// `root` and every process descending from it (threads' children included).
std::vector<int> ProcessTree(int root);

// True if one of `pids` has the socket `inode` open.
bool AnyHoldsSocket(const std::vector<int>& pids, uint64_t inode);

// "" when the listener on host:port belongs to the tree of `program_pid` (or the tables show
// none to hold against it), else why not: another program's.
std::string ListenerOwnerProblem(const std::string& host, int port, int program_pid);

}  // namespace berth
