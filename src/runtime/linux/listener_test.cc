// The listener lookup on canned /proc/net/tcp text, and on a real socket of this process (from
// the tables and from sock_diag).
#include "runtime/linux/listener.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>

#include "common/file_util.h"

namespace berth {
namespace {

constexpr const char* kHeader =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n";

TEST(ListenerTest, FindsTheExactAddressBeforeTheWildcardAndOnlyListeners) {
  std::string tcp = std::string(kHeader) +
                    // 127.0.0.5:8000 established (not a listener), then listening.
                    "   0: 0500007F:1F40 0100007F:9C40 01 00000000:00000000 00:00000000 00000000"
                    "     0        0 111 1 0000000000000000 20 4 30 10 -1\n"
                    "   1: 0500007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
                    "     0        0 222 1 0000000000000000 100 0 0 10 0\n"
                    "   2: 00000000:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
                    "     0        0 333 1 0000000000000000 100 0 0 10 0\n";
  std::string tcp6 = std::string(kHeader) +
                     "   0: 00000000000000000000000000000000:1F42 "
                     "00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 "
                     "00000000     0        0 444 1 0000000000000000 100 0 0 10 0\n";
  EXPECT_EQ(ListenerInode(tcp, tcp6, "127.0.0.5", 8000), 222u);
  EXPECT_EQ(ListenerInode(tcp, tcp6, "127.0.0.9", 8001), 333u);  // 0.0.0.0:8001
  EXPECT_EQ(ListenerInode(tcp, tcp6, "127.0.0.9", 8002), 444u);  // [::]:8002
  EXPECT_EQ(ListenerInode(tcp, tcp6, "127.0.0.6", 8000), std::nullopt);
  EXPECT_EQ(ListenerInode(tcp, tcp6, "not an address", 8000), std::nullopt);
  EXPECT_EQ(ListenerInode("", "", "127.0.0.5", 8000), std::nullopt);
}

TEST(ListenerTest, AListenerOfThisProcessIsOursAndNotAChildsOfAnother) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(0x7f00002a);  // 127.0.0.42, port chosen by the kernel
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int port = ntohs(a.sin_port);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  auto tcp = ReadFile("/proc/net/tcp");
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(ListenerInode(*tcp, "", "127.0.0.42", port), static_cast<uint64_t>(st.st_ino));
  bool asked = false;
  EXPECT_EQ(ListenerInodeFromKernel("127.0.0.42", port, &asked), static_cast<uint64_t>(st.st_ino));
  EXPECT_TRUE(asked) << "sock_diag answers on Linux";
  EXPECT_EQ(ListenerInodeFromKernel("127.0.0.43", port, &asked), std::nullopt)
      << "the kernel's filter matches the address, not only the port";
  EXPECT_TRUE(asked);
  EXPECT_EQ(ListenerOwnerProblem("127.0.0.42", port, ::getpid()), "");
  // A child of ours (a sleep) holds nothing: seen from its tree, the listener is another's.
  pid_t child = ::fork();
  if (child == 0) {
    ::close(fd);
    ::execl("/bin/sleep", "sleep", "5", nullptr);
    ::_exit(127);
  }
  ASSERT_GT(child, 0);
  std::vector<int> tree = ProcessTree(::getpid());
  EXPECT_NE(std::find(tree.begin(), tree.end(), child), tree.end());
  for (int i = 0; i < 100 && ListenerOwnerProblem("127.0.0.42", port, child).empty(); ++i) {
    ::usleep(10000);  // until the child has exec'd and closed its copy of the descriptor
  }
  EXPECT_NE(ListenerOwnerProblem("127.0.0.42", port, child).find("not a process of this instance"),
            std::string::npos);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(fd);
}

}  // namespace
}  // namespace berth
