#include "runtime/linux/listener.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fmt/format.h>
#include <unistd.h>

#include <charconv>

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

}  // namespace

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
  auto tcp = ReadFile("/proc/net/tcp");
  auto tcp6 = ReadFile("/proc/net/tcp6");
  auto inode =
      ListenerInode(tcp.ok() ? *tcp : std::string(), tcp6.ok() ? *tcp6 : std::string(), host, port);
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
