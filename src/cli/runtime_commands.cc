// Runtime commands: push a bundle, read logs, show, stop and start a service.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include "artifacts/bundle_packer.h"
#include "cli/command_util.h"
#include "cli/output.h"

namespace berth {
namespace json = boost::json;
namespace {

// A one-line progress bar on stderr, redrawn at most 10 times a second; silent unless stderr
// is a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)), tty_(isatty(2) != 0) {}
  void Update(uint64_t done, uint64_t total) {
    if (!tty_) {
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) {
      return;
    }
    last_ = now;
    int pct = total ? static_cast<int>(done * 100 / total) : 100;
    int filled = pct * 30 / 100;
    std::cerr << fmt::format("\r{:<10} [{}{}] {:3}% {}/{}", label_, std::string(filled, '#'),
                             std::string(30 - filled, '.'), pct, Human(done), Human(total))
              << std::flush;
  }
  void Done() {
    if (tty_) {
      std::cerr << "\n";
    }
  }
  static std::string Human(uint64_t n) {
    if (n >= (1u << 20)) {
      return fmt::format("{:.1f} MB", static_cast<double>(n) / (1 << 20));
    }
    if (n >= 1024) {
      return fmt::format("{:.1f} KB", static_cast<double>(n) / 1024);
    }
    return fmt::format("{} B", n);
  }

 private:
  std::string label_;
  bool tty_;
  std::chrono::steady_clock::time_point last_{};
};

std::string LogLineText(const json::value& l) {
  return fmt::format("{} {} {:6} {}", Str(Field(l, "time")), Str(Field(l, "instance")),
                     Str(Field(l, "stream")), Str(Field(l, "message")));
}

}  // namespace

PushedBundle PushBundle(const std::string& name, const std::string& source,
                        const std::string& tag, const CommonOptions& opts) {
  return UploadBundle(WithProject(fmt::format("/api/v1/services/{}/artifacts/{}", name, tag), opts),
                      source, true);
}

PushedBundle UploadBundle(const std::string& api_path, const std::string& source,
                          bool watch_build) {
  PushedBundle out;
  std::string upload = source;
  std::string tmp;
  if (std::filesystem::is_directory(source)) {
    tmp = fmt::format("{}/berth-push-{}.tar.gz", std::filesystem::temp_directory_path().string(),
                      getpid());
    ProgressBar packing("packing");
    auto packed =
        PackDirectory(source, tmp, [&](uint64_t d, uint64_t t) { packing.Update(d, t); });
    packing.Done();
    if (!packed.ok()) {
      Fail(packed.status());
    }
    out.entries = packed->entries;
    out.bytes = packed->archive_bytes;
    upload = tmp;
  } else if (std::filesystem::is_regular_file(source)) {
    out.bytes = std::filesystem::file_size(source);  // a tarball, sent as it is
  } else {
    Fail(Status::InvalidArgument(fmt::format(
        "{} is neither a folder nor a bundle file (tar, tar.gz, tar.zst)", source)));
  }
  ProgressBar uploading("uploading");
  // Watching the build: its lines are shown (on stderr, as they come) once the upload is done.
  std::optional<Status> failed;
  std::function<bool(std::string_view)> on_data;
  if (watch_build) {
    on_data = JsonLines([&](const std::string&, const json::value& v) {
      if (!v.is_object()) {
        return;
      }
      if (const auto* b = v.get_object().if_contains("build"); b && b->is_string()) {
        uploading.Done();
        fmt::print(stderr, "build | {}\n", std::string_view(b->get_string()));
        std::fflush(stderr);
      } else if (const auto* a = v.get_object().if_contains("artifact")) {
        out.response = *a;
      } else if (const auto* e = v.get_object().if_contains("error"); e && e->is_object()) {
        failed = Status(StatusCodeFromName(Str(Field(*e, "code"))), Str(Field(*e, "message")));
      }
    });
  }
  std::string path = api_path;
  if (watch_build) {
    path += (path.find('?') == std::string::npos ? "?" : "&") + std::string("progress=1");
  }
  auto r = Client().Upload(path, upload, [&](uint64_t d, uint64_t t) { uploading.Update(d, t); },
                           on_data);
  uploading.Done();
  if (!tmp.empty()) {
    std::filesystem::remove(tmp);
  }
  if (!r.ok()) {
    Fail(r.status());
  }
  if (!watch_build) {
    out.response = r->body;
  } else if (failed) {
    Fail(*failed);
  } else if (out.response.is_null()) {
    Fail(Status::Unavailable("the push's answer ended before it said how the push went"));
  }
  return out;
}

std::string LastLogLines(const std::string& name, int revision, const CommonOptions& opts) {
  auto r = Client().Call(
      "GET",
      WithProject(fmt::format("/api/v1/services/{}/logs?tail=5&version={}", name, revision),
                  opts));
  std::string out;
  if (r.ok()) {
    for (const auto& l : Field(r->body, "lines").as_array()) {
      out += "\n  " + LogLineText(l);
    }
  }
  return out.empty() ? "" : "\nlast log lines:" + out;
}

namespace {

// The newest event of a service's status whose message starts with one of `starts`, or "".
std::string EventStartingWith(const json::value& st, const std::vector<std::string>& starts) {
  for (const auto& e : Field(st, "events").as_array()) {
    std::string message = Str(Field(e, "message"));
    for (const auto& s : starts) {
      if (message.starts_with(s)) {
        return message;
      }
    }
  }
  return "";
}

// Why the latest revision cannot run (the supervisor's event), or "".
std::string CannotRun(const json::value& st) {
  return EventStartingWith(st, {fmt::format("revision {} cannot run", Str(Field(st, "revision")))});
}

}  // namespace

std::string RevisionFailure(const json::value& st, int revision, std::string_view version) {
  std::vector<std::string> starts = {fmt::format("revision {} cannot run", revision),
                                     fmt::format("rolled back revision {}:", revision)};
  if (!version.empty()) {
    starts.push_back(fmt::format("version {} cannot run", version));
  }
  if (std::string message = EventStartingWith(st, starts); !message.empty()) {
    return message;
  }
  if (Field(st, "failed_revision").to_number<int64_t>() == revision) {
    return fmt::format("revision {} was rolled back", revision);
  }
  return "";
}

void WaitForRollout(const std::string& name, int revision, const CommonOptions& opts,
                    int timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::string path = WithProject(fmt::format("/api/v1/services/{}/status", name), opts);
  Spinner progress(std::cerr, isatty(2) != 0, true);
  while (true) {
    json::value st = Call("GET", path);
    if (std::string why = RevisionFailure(st, revision, ""); !why.empty()) {
      Fail(Status::FailedPrecondition(why + LastLogLines(name, revision, opts)));
    }
    if (!Field(st, "desired_running").as_bool()) {
      progress.Clear();
      std::cerr << fmt::format("{} is stopped: revision {} runs once it is started\n", name,
                               revision);
      return;
    }
    int64_t desired = Field(st, "desired").to_number<int64_t>();
    int64_t ready = 0;
    std::string waiting;  // what the first instance not ready is doing
    for (const auto& i : Field(st, "instances").as_array()) {
      if (Field(i, "revision").to_number<int64_t>() != revision) {
        continue;
      }
      if (Str(Field(i, "state")) == "running") {
        ++ready;
      } else if (waiting.empty()) {
        std::string state = Str(Field(i, "state"));
        std::string health = Str(Field(i, "health"));
        if (!Field(i, "signal").is_null()) {
          waiting = fmt::format("{} (killed by signal {})", state, Str(Field(i, "signal")));
        } else if (!Field(i, "exit_code").is_null()) {
          waiting = fmt::format("{} (exit code {})", state, Str(Field(i, "exit_code")));
        } else {
          waiting = state + (health.empty() ? "" : " (health check: " + health + ")");
        }
      }
    }
    if (Field(st, "active_revision").to_number<int64_t>() == revision && ready >= desired) {
      progress.Clear();
      std::cerr << fmt::format("revision {} of {} is live ({}/{} instances ready)\n", revision,
                               name, ready, desired);
      return;
    }
    std::string now =
        fmt::format("{}/{} instances ready{}", ready, desired, waiting.empty() ? "" : "; " + waiting);
    progress.Show(fmt::format("revision {}: {}", revision, now));
    if (std::chrono::steady_clock::now() > deadline) {
      Fail(Status::Unavailable(fmt::format(
          "revision {} of {} is not live after {} s ({}); it goes on rolling out: see "
          "berth services show {}{}",
          revision, name, timeout_s, now, name, LastLogLines(name, revision, opts))));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

std::string StatusWord(const json::value& st) {
  if (!Field(st, "desired_running").as_bool()) {
    return "stopped";
  }
  if (Field(st, "revision").to_number<int64_t>() == 0) {
    return "no definition yet";
  }
  int64_t active = Field(st, "active_revision").to_number<int64_t>();
  if (std::string why = CannotRun(st); !why.empty() && active == 0) {
    return "failed: " + why;
  }
  for (const auto& i : Field(st, "instances").as_array()) {
    if (Str(Field(i, "state")) == "crash-looping" &&
        (active == 0 || Field(i, "revision").to_number<int64_t>() == active)) {
      return "crash-looping";
    }
  }
  int64_t desired = Field(st, "desired").to_number<int64_t>();
  if (desired == 0) {
    return "scaled to 0";
  }
  return Field(st, "running").to_number<int64_t>() >= desired ? "running" : "starting";
}

std::string DescribeStatus(const json::value& st) {
  int64_t active = Field(st, "active_revision").to_number<int64_t>();
  std::string notes;
  if (Field(st, "failed_revision").to_number<int64_t>() > 0) {
    notes += fmt::format("; revision {} was rolled back", Str(Field(st, "failed_revision")));
  }
  if (std::string why = CannotRun(st); !why.empty() && active > 0) {
    notes += "; " + why;
  }
  std::string out = fmt::format(
      "Status:    {} ({}, {}/{} instances ready{})\n", StatusWord(st),
      active > 0 ? fmt::format("revision {} live", active) : "no revision live",
      Str(Field(st, "running")), Str(Field(st, "desired")), notes);
  std::vector<std::vector<std::string>> rows;
  for (const auto& i : Field(st, "instances").as_array()) {
    std::string mem = "-";
    if (Field(i, "rss_bytes").is_int64() || Field(i, "rss_bytes").is_uint64()) {
      mem = fmt::format("{:.1f}M",
                        Field(i, "rss_bytes").to_number<double>() / (1024.0 * 1024.0));
    }
    rows.push_back({Str(Field(i, "id")), Str(Field(i, "revision")), Str(Field(i, "state")),
                    fmt::format("{}:{}", Str(Field(i, "host")), Str(Field(i, "port"))),
                    Str(Field(i, "pid")), Str(Field(i, "restarts")), mem,
                    Str(Field(i, "started_at")),
                    Field(i, "signal").is_null() ? Str(Field(i, "exit_code"))
                                                 : "signal " + Str(Field(i, "signal"))});
  }
  if (!rows.empty()) {
    out += "Instances:\n" + FormatTable({"ID", "REV", "STATE", "ADDRESS", "PID", "RESTARTS", "RSS",
                                         "STARTED", "EXIT"},
                                        rows);
  }
  const auto& events = Field(st, "events").as_array();
  if (!events.empty()) {
    out += "Events (newest first):\n";
    for (size_t k = 0; k < events.size() && k < 10; ++k) {
      out += fmt::format("  {}  {}\n", Str(Field(events[k], "time")),
                         Str(Field(events[k], "message")));
    }
  }
  return out;
}

void AddRuntimeCommands(CLI::App& app, CLI::App& services) {
  auto opts = std::make_shared<CommonOptions>();

  struct PushArgs {
    std::string name;
    std::string dir;
    std::string tag = "latest";
  };
  auto pa = std::make_shared<PushArgs>();
  CLI::App* push = app.add_subcommand(
      "push",
      "Pack a folder (honouring .berthignore), or take a bundle file, and upload it as a tagged "
      "bundle");
  push->add_option("name", pa->name, "Service name")->required();
  push->add_option("source", pa->dir, "Folder to pack, or a bundle (tar, tar.gz, tar.zst)")
      ->required()
      ->check(CLI::ExistingPath);
  push->add_option("-t,--tag", pa->tag, "Tag for the bundle (default: latest)");
  AddCommon(push, opts, true);
  push->callback([opts, pa] {
    PushedBundle pushed = PushBundle(pa->name, pa->dir, pa->tag, *opts);
    Print(*opts, pushed.response,
          fmt::format("Pushed {} as {}:{} ({} files, {})\n", pa->dir, pa->name, pa->tag,
                      pushed.entries, ProgressBar::Human(pushed.bytes)) +
              fmt::format("Digest: {}\n", Str(Field(pushed.response, "digest"))));
  });

  struct LogArgs {
    std::string name;
    std::string version;
    bool follow = false;
    size_t tail = 100;
    std::string instance;
  };
  auto la = std::make_shared<LogArgs>();
  CLI::App* logs = app.add_subcommand("logs", "Print a service's logs (all instances, merged)");
  logs->add_option("name", la->name, "Service name")->required();
  logs->add_option("version", la->version, "Only this version (revision)");
  logs->add_flag("-f,--follow", la->follow, "Keep printing new lines as they come");
  logs->add_option("-n,--tail", la->tail, "Lines to show first (0: all; default 100)");
  logs->add_option("--instance", la->instance, "Only this instance id");
  AddCommon(logs, opts, true);
  logs->callback([opts, la] {
    std::string path = fmt::format("/api/v1/services/{}/logs?tail={}", la->name, la->tail);
    if (!la->version.empty()) {
      path += "&version=" + la->version;
    }
    if (!la->instance.empty()) {
      path += "&instance=" + la->instance;
    }
    path = WithProject(path, *opts);
    if (!la->follow) {
      json::value v = Call("GET", path);
      std::string text;
      for (const auto& l : Field(v, "lines").as_array()) {
        text += LogLineText(l) + "\n";
      }
      Print(*opts, v, text);
      return;
    }
    FollowJsonLines(path + "&follow=1", [&](const std::string& raw, const json::value& l) {
      std::cout << (opts->output == "json" ? raw : LogLineText(l)) << "\n" << std::flush;
    });
  });

  auto name = std::make_shared<std::string>();
  for (bool start : {false, true}) {
    CLI::App* cmd = services.add_subcommand(
        start ? "start" : "stop",
        start ? "Start a stopped service again" : "Stop a service's instances, keeping it");
    cmd->add_option("name", *name, "Service name")->required();
    AddCommon(cmd, opts, true);
    cmd->callback([opts, name, start] {
      json::value v = Call("POST", WithProject(fmt::format("/api/v1/services/{}/{}", *name,
                                                           start ? "start" : "stop"),
                                               *opts));
      Print(*opts, v, fmt::format("{} service {}\n", start ? "Started" : "Stopped", *name));
    });
  }
}

}  // namespace berth
