// notify against real peers on loopback: Debian's aiosmtpd as the SMTP server (it stores what
// it receives in a Maildir), and a small blocking HTTP receiver on a thread for webhooks.
// Waits poll with a deadline; time inside the Dispatcher is a FakeClock wherever it matters.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "notify/dispatcher.h"
#include "common/fake_clock.h"
#include "notify/mailer.h"
#include "notify/webhook.h"

namespace berth {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kDeadline = 15s;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/berth-notify-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t CountOf(std::string_view haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// A port nothing listens on right now (bound and released).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// aiosmtpd with its Mailbox handler: every accepted message becomes one file in
// <dir>/mail/new, carrying the envelope as X-MailFrom / X-RcptTo headers.
class SmtpSink {
 public:
  SmtpSink() : port_(FreePort()) {
    std::string listen = "127.0.0.1:" + std::to_string(port_);
    std::string maildir = dir_.path() + "/mail";
    std::string log = dir_.path() + "/aiosmtpd.log";
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execl("/usr/bin/python3", "python3", "-m", "aiosmtpd", "-n", "-l", listen.c_str(), "-c",
            "aiosmtpd.handlers.Mailbox", maildir.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (std::chrono::steady_clock::now() < deadline) {
      int wstatus = 0;
      if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      if (Accepts(port_)) {
        ready_ = true;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  ~SmtpSink() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Empty unless the server came up; then the aiosmtpd log, for the failure message.
  std::string Problem() const {
    return ready_ ? "" : "aiosmtpd did not start: " + ReadFile(dir_.path() + "/aiosmtpd.log");
  }
  std::string Url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  const std::string& dir() const { return dir_.path(); }

  // Paths of the stored messages, oldest first.
  std::vector<fs::path> Messages() const {
    std::vector<std::pair<fs::file_time_type, fs::path>> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_.path() + "/mail/new", ec)) {
      found.emplace_back(e.last_write_time(), e.path());
    }
    std::sort(found.begin(), found.end());
    std::vector<fs::path> out;
    for (auto& [t, p] : found) {
      out.push_back(p);
    }
    return out;
  }
  void Clear() const {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_.path() + "/mail/new", ec)) {
      fs::remove(e.path());
    }
  }

 private:
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

struct Decoded {
  std::string subject;
  std::string body;
};

// Decodes a stored message with Python's email package (RFC 2047 subject, quoted-printable
// body), so the test checks what a mail client would show rather than our own encoding.
Decoded Decode(const fs::path& message, const std::string& scratch_dir) {
  std::string script = scratch_dir + "/decode.py";
  std::ofstream(script) << "import email, email.policy, sys\n"
                           "m = email.message_from_binary_file(open(sys.argv[1], 'rb'),\n"
                           "                                   policy=email.policy.default)\n"
                           "sys.stdout.write(str(m['subject']) + '\\n' + m.get_content())\n";
  std::string cmd = "/usr/bin/python3 '" + script + "' '" + message.string() + "'";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
    out.append(buf, n);
  }
  EXPECT_EQ(pclose(p), 0) << cmd;
  size_t nl = out.find('\n');
  if (nl == std::string::npos) {
    return {out, ""};
  }
  return {out.substr(0, nl), out.substr(nl + 1)};
}

// A blocking HTTP/1.1 receiver on 127.0.0.1: one connection at a time, one request per
// connection. Answers 500 to the first `fail_first` requests (to all when negative), then
// 200. With `hold_first`, the answer to the first request waits for Release().
class WebhookReceiver {
 public:
  struct Request {
    std::string head;
    std::string body;
  };

  explicit WebhookReceiver(int fail_first = 0, bool hold_first = false)
      : fail_first_(fail_first), hold_first_(hold_first) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listen_fd_, 16), 0);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~WebhookReceiver() {
    Release();
    shutdown(listen_fd_, SHUT_RDWR);  // wakes the blocked accept()
    thread_.join();
    close(listen_fd_);
  }

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }

  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

  // True once `n` requests have arrived (false at the deadline).
  bool WaitForRequests(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return requests_.size() >= n; });
  }

  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  void Serve() {
    while (true) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) {
        if (errno == EINTR) {
          continue;
        }
        return;  // shut down
      }
      Handle(fd);
      close(fd);
    }
  }

  void Handle(int fd) {
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string data;
    char buf[4096];
    size_t head_end;
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        return;
      }
      data.append(buf, static_cast<size_t>(n));
    }
    Request req{data.substr(0, head_end), data.substr(head_end + 4)};
    std::string lower = req.head;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    size_t length = 0;
    if (size_t at = lower.find("\r\ncontent-length:"); at != std::string::npos) {
      length = std::stoul(lower.substr(at + 17));
    }
    while (req.body.size() < length) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        return;
      }
      req.body.append(buf, static_cast<size_t>(n));
    }
    bool fail;
    {
      std::unique_lock lock(mu_);
      requests_.push_back(req);
      int seq = static_cast<int>(requests_.size());
      fail = fail_first_ < 0 || seq <= fail_first_;
      cv_.notify_all();
      if (hold_first_ && seq == 1) {
        cv_.wait(lock, [this] { return released_; });
      }
    }
    std::string answer = fail ? "HTTP/1.1 500 Internal Server Error\r\n" : "HTTP/1.1 200 OK\r\n";
    answer += "Content-Length: 0\r\nConnection: close\r\n\r\n";
    (void)send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
  }

  const int fail_first_;
  const bool hold_first_;
  int listen_fd_ = -1;
  int port_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> requests_;  // GUARDED_BY(mu_)
  bool released_ = false;          // GUARDED_BY(mu_)
  std::thread thread_;
};

NotificationMessage Notification(int64_t id) {
  NotificationMessage n;
  n.id = id;
  n.project = "default";
  n.service = "hello";
  n.version = "1.0.0";
  n.severity = "WARNING";
  n.message = "health check failed: GET /healthz returned 503";
  n.count = 3;
  n.first_at = "2026-11-22T07:40:00Z";
  n.last_at = "2026-11-22T07:45:00Z";
  return n;
}

// One aiosmtpd for the whole suite: starting Python costs about half a second.
class SmtpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { sink_ = new SmtpSink(); }
  static void TearDownTestSuite() {
    delete sink_;
    sink_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(sink_->Problem(), "");
    sink_->Clear();
  }

  SmtpSettings Settings() const {
    SmtpSettings s;
    s.url = sink_->Url();
    s.from = "berth@example.com";
    s.timeout = 10s;
    return s;
  }

  static SmtpSink* sink_;
};
SmtpSink* SmtpTest::sink_ = nullptr;

TEST_F(SmtpTest, SendEmailDeliversMessageToServer) {
  std::string long_line(2000, 'x');
  Email email;
  email.to = {"ops@example.com", "dev@example.org"};
  email.subject = "Disk almost full on caf\xC3\xA9 \xE2\x9C\x93";
  email.body = "first line\n.starts with a dot\nsum=42 = ok\n" + long_line + "\nlast line\n";
  ASSERT_TRUE(SendEmail(Settings(), email).ok());

  std::vector<fs::path> messages = sink_->Messages();
  ASSERT_EQ(messages.size(), 1u);
  std::string raw = ReadFile(messages[0]);
  EXPECT_NE(raw.find("X-MailFrom: berth@example.com"), std::string::npos) << raw;
  EXPECT_NE(raw.find("X-RcptTo: ops@example.com, dev@example.org"), std::string::npos) << raw;
  EXPECT_NE(raw.find("From: berth@example.com"), std::string::npos) << raw;
  EXPECT_NE(raw.find("To: ops@example.com, dev@example.org"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Date: "), std::string::npos) << raw;
  EXPECT_NE(raw.find("Message-ID: <"), std::string::npos) << raw;
  EXPECT_NE(raw.find("MIME-Version: 1.0"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Content-Type: text/plain; charset=utf-8"), std::string::npos) << raw;
  EXPECT_EQ(raw.find(long_line), std::string::npos) << "lines over 998 octets must be wrapped";

  Decoded d = Decode(messages[0], sink_->dir());
  EXPECT_EQ(d.subject, email.subject);
  EXPECT_EQ(d.body, email.body);
}

TEST_F(SmtpTest, BadAddressIsInvalidArgumentAndNothingIsSent) {
  for (std::string bad : {"not-an-address", "@example.com", "ops@", "ops@example.com\r\nBcc: x@y",
                          "two words@example.com", "<ops@example.com>"}) {
    Email email{{"fine@example.com", bad}, "subject", "body"};
    Status s = SendEmail(Settings(), email);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(bad), std::string::npos) << s.message();
  }
  SmtpSettings bad_from = Settings();
  bad_from.from = "berth";
  Status s = SendEmail(bad_from, Email{{"ops@example.com"}, "subject", "body"});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'berth'"), std::string::npos) << s.message();
  EXPECT_EQ(SendEmail(Settings(), Email{{}, "subject", "body"}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(sink_->Messages().empty());
}

TEST_F(SmtpTest, NonSmtpUrlIsInvalidArgument) {
  SmtpSettings s = Settings();
  s.url = "http://127.0.0.1:" + std::to_string(sink_->port());
  EXPECT_EQ(SendEmail(s, Email{{"ops@example.com"}, "subject", "body"}).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SmtpTest, RequiredStarttlsNotOfferedIsUnavailableAndNothingIsSent) {
  SmtpSettings s = Settings();
  s.starttls = true;
  Status st = SendEmail(s, Email{{"ops@example.com"}, "subject", "body"});
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_TRUE(sink_->Messages().empty());
}

TEST(MailerTest, ServerDownIsUnavailableWithClearMessage) {
  int port = FreePort();
  SmtpSettings s;
  s.url = "smtp://mailer:hunter2@127.0.0.1:" + std::to_string(port);
  s.from = "berth@example.com";
  s.user = "mailer";
  s.password = "s3cret-password";
  Status st = SendEmail(s, Email{{"ops@example.com"}, "subject", "body"});
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  std::string want =
      "sending email to ops@example.com via smtp://127.0.0.1:" + std::to_string(port) + ": ";
  EXPECT_EQ(st.message().rfind(want, 0), 0u) << st.message();
  EXPECT_GT(st.message().size(), want.size()) << "the curl error is missing";
  EXPECT_EQ(st.message().find("s3cret-password"), std::string::npos);
  EXPECT_EQ(st.message().find("hunter2"), std::string::npos);
}

TEST(WebhookTest, PostsJsonWithHeaders) {
  WebhookReceiver receiver;
  ASSERT_TRUE(PostJson(receiver.Url(), R"({"a":1})", 10s).ok());
  std::vector<WebhookReceiver::Request> got = receiver.requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].head.rfind("POST /hook HTTP/1.1\r\n", 0), 0u) << got[0].head;
  EXPECT_NE(got[0].head.find("\r\nContent-Type: application/json"), std::string::npos);
  EXPECT_NE(got[0].head.find("\r\nUser-Agent: berth"), std::string::npos);
  EXPECT_EQ(got[0].body, R"({"a":1})");
}

TEST(WebhookTest, Non2xxIsUnavailableNamingUrlAndStatus) {
  WebhookReceiver receiver(/*fail_first=*/-1);
  Status s = PostJson(receiver.Url() + "?token=abc", "{}", 10s);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(receiver.Url()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("500"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("token=abc"), std::string::npos) << s.message();
}

TEST(WebhookTest, OnlyHttpAndHttpsUrls) {
  for (std::string url : {"ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1:80/x", ""}) {
    EXPECT_EQ(PostJson(url, "{}", 1s).code(), StatusCode::kInvalidArgument) << url;
  }
}

TEST(WebhookTest, UnreachableIsUnavailable) {
  std::string url = "http://127.0.0.1:" + std::to_string(FreePort()) + "/hook";
  Status s = PostJson(url, "{}", 10s);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(url), std::string::npos) << s.message();
}

TEST(DispatcherTest, RetriesWebhookWithBackoffThenPostsJson) {
  FakeClock clock;
  WebhookReceiver receiver(/*fail_first=*/2);
  DispatcherOptions o;
  o.webhooks = {receiver.Url()};
  o.webhook_attempts = 3;
  o.retry_base = 500ms;
  Dispatcher d(o, &clock);
  d.Deliver(Notification(42));
  d.Flush();

  std::vector<WebhookReceiver::Request> got = receiver.requests();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(clock.sleeps(), (std::vector<std::chrono::milliseconds>{500ms, 1000ms}));
  boost::json::object j = boost::json::parse(got[2].body).as_object();
  EXPECT_EQ(j.at("id").as_int64(), 42);
  EXPECT_EQ(j.at("project").as_string(), "default");
  EXPECT_EQ(j.at("service").as_string(), "hello");
  EXPECT_EQ(j.at("version").as_string(), "1.0.0");
  EXPECT_EQ(j.at("severity").as_string(), "WARNING");
  EXPECT_EQ(j.at("message").as_string(), "health check failed: GET /healthz returned 503");
  EXPECT_EQ(j.at("count").as_int64(), 3);
  EXPECT_EQ(j.at("first_at").as_string(), "2026-11-22T07:40:00Z");
  EXPECT_EQ(j.at("last_at").as_string(), "2026-11-22T07:45:00Z");
  EXPECT_EQ(j.size(), 9u);
}

TEST(DispatcherTest, GivesUpAfterWebhookAttemptsAndLogsUrl) {
  FakeClock clock;
  WebhookReceiver failing(/*fail_first=*/-1);
  WebhookReceiver healthy;
  DispatcherOptions o;
  o.webhooks = {failing.Url(), healthy.Url()};
  o.webhook_attempts = 4;
  o.retry_base = 100ms;
  Dispatcher d(o, &clock);
  testing::internal::CaptureStderr();
  d.Deliver(Notification(7));
  d.Flush();
  std::string log = testing::internal::GetCapturedStderr();

  EXPECT_EQ(failing.requests().size(), 4u);
  EXPECT_EQ(healthy.requests().size(), 1u) << "a failing webhook must not starve the others";
  EXPECT_EQ(clock.sleeps(), (std::vector<std::chrono::milliseconds>{100ms, 200ms, 400ms}));
  EXPECT_EQ(CountOf(log, "webhook delivery failed"), 1u) << log;
  EXPECT_NE(log.find("url=" + failing.Url()), std::string::npos) << log;
}

TEST(DispatcherTest, DropsOldestWhenQueueIsFull) {
  FakeClock clock;
  WebhookReceiver receiver(/*fail_first=*/0, /*hold_first=*/true);
  DispatcherOptions o;
  o.webhooks = {receiver.Url()};
  o.max_queued = 2;
  Dispatcher d(o, &clock);
  d.Deliver(Notification(1));
  ASSERT_TRUE(receiver.WaitForRequests(1));  // 1 is in progress, held by the receiver
  testing::internal::CaptureStderr();
  for (int64_t id = 2; id <= 5; ++id) {
    d.Deliver(Notification(id));
  }
  std::string log = testing::internal::GetCapturedStderr();
  receiver.Release();
  d.Flush();

  std::vector<int64_t> ids;
  for (const auto& r : receiver.requests()) {
    ids.push_back(boost::json::parse(r.body).at("id").as_int64());
  }
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 4, 5}));
  EXPECT_EQ(CountOf(log, "notification queue full"), 2u) << log;
}

TEST(DispatcherTest, ShutdownEndsBackoffAndDiscardsQueue) {
  WebhookReceiver receiver(/*fail_first=*/-1);
  DispatcherOptions o;
  o.webhooks = {receiver.Url()};
  o.webhook_attempts = 5;
  o.retry_base = std::chrono::hours(1);  // only a stop request can end this wait
  Dispatcher d(o);                       // RealClock
  d.Deliver(Notification(1));
  d.Deliver(Notification(2));
  d.Deliver(Notification(3));
  ASSERT_TRUE(receiver.WaitForRequests(1));
  d.Shutdown();
  d.Deliver(Notification(4));  // ignored
  d.Flush();                   // returns: nothing is queued after Shutdown
  d.Shutdown();                // idempotent
  EXPECT_EQ(receiver.requests().size(), 1u);
}

class DispatcherEmailTest : public SmtpTest {
 protected:
  DispatcherOptions Options() {
    DispatcherOptions o;
    o.smtp = Settings();
    return o;
  }
};

TEST_F(DispatcherEmailTest, EmailsNotificationToAllAddresses) {
  FakeClock clock;
  Dispatcher d(Options(), &clock);
  NotificationMessage n = Notification(5);
  n.message = "instance exited with status 137 (out of memory) after 3 restarts in the last minute";
  n.emails = {"ops@example.com", "dev@example.org"};
  d.Deliver(n);
  d.Flush();

  std::vector<fs::path> messages = sink_->Messages();
  ASSERT_EQ(messages.size(), 1u);
  std::string raw = ReadFile(messages[0]);
  EXPECT_NE(raw.find("X-RcptTo: ops@example.com, dev@example.org"), std::string::npos) << raw;
  Decoded m = Decode(messages[0], sink_->dir());
  EXPECT_EQ(m.subject, "[berth] WARNING default/hello 1.0.0: " + n.message.substr(0, 60));
  for (std::string want :
       {n.message, std::string("default"), std::string("hello"), std::string("1.0.0"),
        std::string("3 times"), std::string("2026-11-22T07:40:00Z"),
        std::string("2026-11-22T07:45:00Z")}) {
    EXPECT_NE(m.body.find(want), std::string::npos) << want << " missing from:\n" << m.body;
  }
}

TEST_F(DispatcherEmailTest, SuppressionTimerAllowsOneEmailPerPeriod) {
  FakeClock clock;
  Dispatcher d(Options(), &clock);
  NotificationMessage n = Notification(9);
  n.emails = {"ops@example.com"};
  n.timer_s = 60;

  d.Deliver(n);
  d.Deliver(n);
  d.Flush();
  EXPECT_EQ(sink_->Messages().size(), 1u);

  clock.Advance(59s);
  d.Deliver(n);
  NotificationMessage other = Notification(10);  // its own timer
  other.emails = {"ops@example.com"};
  other.timer_s = 60;
  d.Deliver(other);
  d.Flush();
  EXPECT_EQ(sink_->Messages().size(), 2u);

  clock.Advance(2s);
  d.Deliver(n);
  d.Flush();
  EXPECT_EQ(sink_->Messages().size(), 3u);
}

TEST_F(DispatcherEmailTest, TimerZeroEmailsEveryOccurrence) {
  FakeClock clock;
  Dispatcher d(Options(), &clock);
  NotificationMessage n = Notification(11);
  n.emails = {"ops@example.com"};
  for (int i = 0; i < 3; ++i) {
    d.Deliver(n);
  }
  d.Flush();
  EXPECT_EQ(sink_->Messages().size(), 3u);
}

TEST(DispatcherTest, WarnsOncePerNotificationWhenSmtpIsNotConfigured) {
  FakeClock clock;
  Dispatcher d(DispatcherOptions{}, &clock);
  NotificationMessage a = Notification(21);
  a.emails = {"ops@example.com"};
  NotificationMessage b = Notification(22);
  b.emails = {"ops@example.com"};
  testing::internal::CaptureStderr();
  d.Deliver(a);
  d.Deliver(a);
  d.Deliver(b);
  d.Flush();
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(CountOf(log, "configure smtp"), 2u) << log;
  EXPECT_EQ(CountOf(log, "id=21 "), 1u) << log;
  EXPECT_EQ(CountOf(log, "id=22 "), 1u) << log;
}

}  // namespace
}  // namespace berth
