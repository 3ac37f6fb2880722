#include "runtime/linux/listener.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fmt/format.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/file_util.h"

namespace berth {
namespace {

// The table's "local_address" of an IPv4 address and port: "0100007F:1F90" (the address in
// the kernel's byte order, printed as one hex word; the port big-endian hex).
std::string LocalAddress4(const std::string& host, int port) {
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) != 1) {
    return {};
  }
  return fmt::format("{:08X}:{:04X}", a.s_addr, port);
}

// In a table of "sl local rem st ... inode" lines, the inode of the LISTEN (0A) line whose
// local address is `local`.
std::optional<uint64_t> FindListener(std::string_view table, std::string_view local) {
  if (local.empty()) {
    return std::nullopt;
  }
  size_t at = 0;
  while ((at = table.find(local, at)) != std::string_view::npos) {
    size_t bol = table.rfind('\n', at);
    bol = bol == std::string_view::npos ? 0 : bol + 1;
    size_t eol = table.find('\n', at);
    std::string_view line = table.substr(bol, eol == std::string_view::npos ? eol : eol - bol);
    at += local.size();
    // Fields: sl, local, remote, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode.
    std::vector<std::string_view> f;
    for (size_t i = 0; i < line.size() && f.size() < 10;) {
      while (i < line.size() && line[i] == ' ') {
        ++i;
      }
      size_t j = line.find(' ', i);
      j = j == std::string_view::npos ? line.size() : j;
      if (j > i) {
        f.push_back(line.substr(i, j - i));
      }
      i = j;
    }
    if (f.size() < 10 || f[1] != local || f[3] != "0A") {
      continue;
    }
    uint64_t inode = 0;
    if (std::from_chars(f[9].data(), f[9].data() + f[9].size(), inode).ec == std::errc() &&
        inode != 0) {
      return inode;
    }
  }
  return std::nullopt;
}

// Asks the kernel (sock_diag, as ss does) for the TCP socket of `family` listening on
// `addr`:`port`, filtered in the kernel: only listening sockets are walked, and only the match
// comes back. /proc/net/tcp instead prints every socket of the host, TIME_WAIT ones included,
// and at a few thousand instances reading it was most of what starting one cost.
// nullopt: none listens there; an error: the kernel could not be asked.
Result<std::optional<uint64_t>> DiagListener(int family, const void* addr, size_t addr_len,
                                             int port) {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) {
    return Status::Internal(fmt::format("sock_diag: {}", std::strerror(errno)));
  }
  // nlmsghdr, inet_diag_req_v2, then the filter: one host condition (address and port) that
  // jumps to the end (accept) when it holds and past it (reject) when not.
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
    nlattr bc;
    inet_diag_bc_op op;
    // An inet_diag_hostcond and its address (a flexible array, so not a member here).
    unsigned char cond[sizeof(inet_diag_hostcond) + 16];
  } msg{};
  const size_t bc_len = sizeof(msg.op) + sizeof(inet_diag_hostcond) + addr_len;
  msg.nlh.nlmsg_len = static_cast<uint32_t>(offsetof(decltype(msg), op) + bc_len);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = static_cast<uint8_t>(family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = 1u << TCP_LISTEN;
  msg.bc.nla_type = INET_DIAG_REQ_BYTECODE;
  msg.bc.nla_len = static_cast<uint16_t>(sizeof(msg.bc) + bc_len);
  msg.op.code = INET_DIAG_BC_S_COND;
  msg.op.yes = static_cast<uint8_t>(bc_len);
  msg.op.no = static_cast<uint16_t>(bc_len + 4);
  inet_diag_hostcond cond{};
  cond.family = static_cast<uint8_t>(family);
  cond.prefix_len = static_cast<uint8_t>(addr_len * 8);
  cond.port = port;
  std::memcpy(msg.cond, &cond, sizeof(cond));
  std::memcpy(msg.cond + sizeof(cond), addr, std::min<size_t>(addr_len, 16));
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &msg, msg.nlh.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0) {
    int e = errno;
    ::close(fd);
    return Status::Internal(fmt::format("sock_diag: {}", std::strerror(e)));
  }
  std::optional<uint64_t> found;
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      int e = n < 0 ? errno : EPROTO;
      ::close(fd);
      return Status::Internal(fmt::format("sock_diag: {}", std::strerror(e)));
    }
    // The messages of one datagram, each aligned as NLMSG_NEXT would step (without its
    // signed arithmetic).
    for (size_t at = 0; at + sizeof(nlmsghdr) <= static_cast<size_t>(n);) {
      auto* h = reinterpret_cast<nlmsghdr*>(buf + at);
      if (h->nlmsg_len < sizeof(nlmsghdr) || at + h->nlmsg_len > static_cast<size_t>(n)) {
        break;
      }
      at += NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_type == NLMSG_DONE) {
        ::close(fd);
        return found;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* err = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        ::close(fd);
        return Status::Internal(fmt::format("sock_diag: {}", std::strerror(-err->error)));
      }
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
        continue;
      }
      auto* d = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
      if (!found && d->idiag_inode != 0) {
        found = d->idiag_inode;
      }
    }
  }
}

}  // namespace

std::optional<uint64_t> ListenerInodeFromKernel(const std::string& host, int port, bool* asked) {
  *asked = false;
  in_addr exact{};
  if (::inet_pton(AF_INET, host.c_str(), &exact) != 1) {
    return std::nullopt;
  }
  in_addr any{};
  in6_addr any6{};
  // The exact address first, else the wildcard ones the kernel would hand the connection to.
  auto r = DiagListener(AF_INET, &exact, sizeof(exact), port);
  if (!r.ok()) {
    return std::nullopt;
  }
  *asked = true;
  if (*r) {
    return *r;
  }
  if (r = DiagListener(AF_INET, &any, sizeof(any), port); r.ok() && *r) {
    return *r;
  }
  if (r = DiagListener(AF_INET6, &any6, sizeof(any6), port); r.ok() && *r) {
    return *r;
  }
  return std::nullopt;
}

std::optional<uint64_t> ListenerInode(std::string_view tcp, std::string_view tcp6,
                                      const std::string& host, int port) {
  if (auto i = FindListener(tcp, LocalAddress4(host, port))) {
    return i;
  }
  if (auto i = FindListener(tcp, LocalAddress4("0.0.0.0", port))) {
    return i;
  }
  return FindListener(tcp6, fmt::format("{:032X}:{:04X}", 0, port));
}

std::vector<int> ProcessTree(int root) {
  std::vector<int> out{root};
  for (size_t k = 0; k < out.size() && out.size() < 4096; ++k) {
    std::string tasks = fmt::format("/proc/{}/task", out[k]);
    DIR* d = ::opendir(tasks.c_str());
    if (d == nullptr) {
      continue;
    }
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') {
        continue;
      }
      auto children = ReadFile(tasks + "/" + e->d_name + "/children");
      if (!children.ok()) {
        continue;
      }
      const char* p = children->data();
      const char* end = p + children->size();
      while (p < end) {
        int pid = 0;
        auto r = std::from_chars(p, end, pid);
        if (r.ec != std::errc()) {
          ++p;
          continue;
        }
        out.push_back(pid);
        p = r.ptr;
      }
    }
    ::closedir(d);
  }
  return out;
}

bool AnyHoldsSocket(const std::vector<int>& pids, uint64_t inode) {
  std::string want = fmt::format("socket:[{}]", inode);
  char link[64];
  for (int pid : pids) {
    std::string fds = fmt::format("/proc/{}/fd", pid);
    DIR* d = ::opendir(fds.c_str());
    if (d == nullptr) {
      continue;
    }
    bool found = false;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') {
        continue;
      }
      ssize_t n = ::readlinkat(::dirfd(d), e->d_name, link, sizeof(link));
      if (n > 0 && std::string_view(link, static_cast<size_t>(n)) == want) {
        found = true;
        break;
      }
    }
    ::closedir(d);
    if (found) {
      return true;
    }
  }
  return false;
}

std::string ListenerOwnerProblem(const std::string& host, int port, int program_pid) {
  bool asked = false;
  auto inode = ListenerInodeFromKernel(host, port, &asked);
  if (!asked) {  // no sock_diag (a kernel without it): the tables
    auto tcp = ReadFile("/proc/net/tcp");
    auto tcp6 = ReadFile("/proc/net/tcp6");
    inode = ListenerInode(tcp.ok() ? *tcp : std::string(), tcp6.ok() ? *tcp6 : std::string(), host,
                          port);
  }
  if (!inode) {
    return {};  // a listener the tables do not show (IPv4-mapped, say): nothing to hold against it
  }
  if (AnyHoldsSocket(ProcessTree(program_pid), *inode)) {
    return {};
  }
  return fmt::format(
      "{}:{} answers, but the listener is not a process of this instance (another "
      "program holds the address)",
      host, port);
}

}  // namespace berth
