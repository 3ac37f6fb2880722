#include "runtime/health_check.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "runtime/instance_http.h"

extern "C" char** environ;

namespace berth {
namespace {

// The default ExecSpawner.
std::string SpawnCheck(char* const* argv, char* const* envp, pid_t* out) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  // The daemon's sockets (listener, clients) are not the probe's business.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  // Its own process group, so that a timeout kills whatever it started too.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  *out = pid;
  return rc == 0 ? "" : std::strerror(rc);
}

// Runs the check's command with HOST and PORT of the instance; healthy when it exits 0
// within the timeout (Kubernetes' exec probe).
ProbeResult ProbeExec(const std::string& host, int port, const HealthCheck& check,
                      const ExecSpawner& spawn) {
  std::vector<std::string> args;
  for (std::string a : check.command) {
    for (auto [from, to] : {std::pair<std::string, std::string>{"$(HOST)", host},
                            {"$(PORT)", std::to_string(port)}}) {
      for (size_t at = a.find(from); at != std::string::npos; at = a.find(from, at + to.size())) {
        a.replace(at, from.size(), to);
      }
    }
    args.push_back(std::move(a));
  }
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  std::vector<std::string> env_text = {"HOST=" + host, "PORT=" + std::to_string(port)};
  const char* path = std::getenv("PATH");
  env_text.push_back(std::string("PATH=") + (path ? path : "/usr/local/bin:/usr/bin:/bin"));
  std::vector<char*> envp;
  for (auto& e : env_text) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  pid_t pid = 0;
  std::string why =
      spawn ? spawn(argv.data(), envp.data(), &pid) : SpawnCheck(argv.data(), envp.data(), &pid);
  if (!why.empty()) {
    return {false, fmt::format("cannot run {}: {}", args[0], why)};
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(check.timeout_s);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return {false, fmt::format("{} did not finish within {} s", args[0], check.timeout_s)};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid, SIGKILL);  // nothing it started outlives the probe
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    return {true, fmt::format("{} exited 0", args[0])};
  }
  return {false, WIFEXITED(status) ? fmt::format("{} exited {}", args[0], WEXITSTATUS(status))
                                   : fmt::format("{} was killed", args[0])};
}

}  // namespace

ProbeResult ProbeInstance(const std::string& host, int port, const HealthCheck& check,
                          const StatusCodeSet& codes, const std::string& path,
                          const ExecSpawner& spawn) {
  if (check.type == "exec") {
    return ProbeExec(host, port, check, spawn);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(check.timeout_s);
  auto s = ConnectInstance(host, port, deadline);
  if (!s.ok()) {
    return {false, s.status().message()};
  }
  if (check.type == "tcp") {
    return {true, "accepting connections"};
  }
  std::string req = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: berth-health-check\r\nConnection: close"
      "\r\n\r\n",
      path, host, port);
  if (auto st = SendAll(*s, req, deadline); !st.ok()) {
    return {false, st.message()};
  }
  std::string resp;
  auto has_status_line = [](const std::string& r) { return r.find("\r\n") != std::string::npos; };
  if (auto st = ReceiveUntil(*s, resp, deadline, 8192, has_status_line); !st.ok()) {
    return {false, st.message()};
  }
  if (!has_status_line(resp)) {
    return {false, "connection closed before a status line"};
  }
  // "HTTP/1.1 200 OK"
  size_t sp = resp.find(' ');
  int code = 0;
  if (sp != std::string::npos && resp.size() >= sp + 4) {
    code = std::atoi(resp.substr(sp + 1, 3).c_str());
  }
  if (code == 0) {
    return {false, "not an HTTP response"};
  }
  if (!codes.Contains(code)) {
    return {false, fmt::format("HTTP {} is not in {}", code, codes.text())};
  }
  return {true, fmt::format("HTTP {}", code)};
}

}  // namespace berth
