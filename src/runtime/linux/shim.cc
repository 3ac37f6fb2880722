// The shim runs once per instance for as long as the instance, so what it costs is paid per
// instance: it is built as its own small program (berth-shim, see shim_main.cc) that links
// none of berth's libraries. Hence the few things here that berth has elsewhere in a heavier
// form: the JSON of the instance records (Boost.JSON in instance_spec.cc), the instance's
// cgroups (iostreams in cgroup.cc) and message formatting (fmt). No threads, no iostreams.
#include "runtime/linux/shim.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/file_util.h"
#include "runtime/instance_spec.h"  // the record types only: their JSON is below
#include "runtime/linux/address_claim.h"
#include "runtime/linux/process_identity.h"
#include "runtime/linux/sandbox.h"
#include "runtime/log_writer.h"

namespace berth {
namespace {

using Clock = std::chrono::steady_clock;

int64_t UnixMillisNow() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// --- JSON of the instance records ---------------------------------------------------------
// Byte for byte what instance_spec.cc writes with Boost.JSON (members in order, no spaces,
// the same escapes), so that the daemon reads the shim's records with its own code and
// either side's files look the same.

// JSON's one-letter escapes: {'\n', 'n'}...
constexpr struct {
  char c;
  char letter;
} kEscapes[] = {{'"', '"'},  {'\\', '\\'}, {'\b', 'b'}, {'\f', 'f'},
                {'\n', 'n'}, {'\r', 'r'},  {'\t', 't'}};

char EscapeLetter(char c) {
  for (const auto& e : kEscapes) {
    if (e.c == c) {
      return e.letter;
    }
  }
  return '\0';
}

// The character a one-letter escape stands for, '\0' for none. "\/" too: Boost and the shim
// do not write it, but JSON has it.
char Unescaped(char letter) {
  for (const auto& e : kEscapes) {
    if (e.letter == letter && letter != '\0') {
      return e.c;
    }
  }
  return letter == '/' ? '/' : '\0';
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (char letter = EscapeLetter(c); letter != '\0') {
      out += '\\';
      out += letter;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  out += '"';
}

// Builds one flat object: {"a":1,"b":"x"}.
class JsonObjectWriter {
 public:
  JsonObjectWriter& Int(std::string_view key, int64_t v) {
    Key(key);
    out_ += std::to_string(v);
    return *this;
  }
  JsonObjectWriter& Bool(std::string_view key, bool v) {
    Key(key);
    out_ += v ? "true" : "false";
    return *this;
  }
  JsonObjectWriter& Str(std::string_view key, std::string_view v) {
    Key(key);
    AppendJsonString(out_, v);
    return *this;
  }
  std::string Done() { return std::move(out_) + '}'; }

 private:
  void Key(std::string_view key) {
    if (out_.size() > 1) {
      out_ += ',';
    }
    AppendJsonString(out_, key);
    out_ += ':';
  }
  std::string out_ = "{";
};

std::string ShimRecordJson(const ShimRecord& r) {
  return JsonObjectWriter()
      .Int("shim_pid", r.shim_pid)
      .Int("pid", r.pid)
      .Int("started_at", r.started_at)
      .Int("shim_start", r.shim_start)
      .Done();
}

std::string ExitRecordJson(const ExitRecord& r) {
  return JsonObjectWriter()
      .Int("exit_code", r.exit_code)
      .Int("signal", r.signal)
      .Bool("oom_killed", r.oom_killed)
      .Int("ended_at", r.ended_at)
      .Str("error", r.error)
      .Done();
}

// Reads spec.json as InstanceSpecFromJson does: the text must be one JSON object; a member of
// the wrong type reads as 0 / "" / {}, and so does a number that is not an integer of 64 bits
// (Boost reads those as doubles); non-string array items are skipped; the last of duplicate
// members wins. Not a validator: numbers and UTF-8 are taken as they come.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : s_(text) {}

  bool ReadSpec(InstanceSpec& spec) {
    if (!Object([&](const std::string& key) { return Member(key, spec); })) {
      return false;
    }
    Space();
    return i_ == s_.size();
  }

 private:
  // An object, each member's value read by `member(key)`.
  template <typename F>
  bool Object(F member) {
    if (!Expect('{')) {
      return false;
    }
    if (Expect('}')) {
      return true;
    }
    do {
      std::string key;
      if (!String(&key) || !Expect(':') || !member(key)) {
        return false;
      }
    } while (Expect(','));
    return Expect('}');
  }

  bool Str(std::string& out) {
    out.clear();
    return Peek('"') ? String(&out) : Skip(0);
  }

  bool Int(int64_t& out) {
    out = 0;
    return Number(&out) || Skip(0);
  }

  bool SandboxMember(const std::string& key, Sandbox& sb) {
    int64_t n = 0;
    if (key == "hide") {
      return Strings(sb.hide);
    }
    if (key == "passwd" || key == "group") {
      return Str(key == "passwd" ? sb.passwd : sb.group);
    }
    if (key == "binds") {
      sb.binds.clear();
      if (!Expect('[')) {
        return Skip(0);
      }
      if (Expect(']')) {
        return true;
      }
      do {
        if (!Peek('{')) {  // not a bind: skipped, as Boost's reader does
          if (!Skip(1)) {
            return false;
          }
          continue;
        }
        BindMount& b = sb.binds.emplace_back(BindMount{"", "", false});
        auto bind_member = [&](const std::string& k) {
          if (k == "writable" || k == "layered") {
            Space();
            (k == "writable" ? b.writable : b.layered) = s_.substr(i_, 4) == "true";
            return Skip(1);
          }
          return k == "source" || k == "target" ? Str(k == "source" ? b.source : b.target)
                                                : Skip(1);
        };
        if (!Object(bind_member)) {
          return false;
        }
      } while (Expect(','));
      return Expect(']');
    }
    if (!Int(n)) {
      return false;
    }
    if (key == "uid") {
      sb.uid = static_cast<uint32_t>(n);
    } else if (key == "gid") {
      sb.gid = static_cast<uint32_t>(n);
    } else if (key == "tmp_bytes") {
      sb.tmp_bytes = static_cast<uint64_t>(n);
    }
    return true;
  }

  bool Member(const std::string& key, InstanceSpec& spec) {
    if (key == "id" || key == "cwd") {
      return Str(key == "id" ? spec.id : spec.cwd);
    }
    if (key == "address_claim") {
      return Str(spec.address_claim);
    }
    if (key == "argv" || key == "env") {
      return Strings(key == "argv" ? spec.argv : spec.env);
    }
    if (key == "sandbox") {
      spec.sandbox = {};
      auto member = [&](const std::string& k) { return SandboxMember(k, spec.sandbox); };
      return Peek('{') ? Object(member) : Skip(0);
    }
    int64_t n = 0;
    if (!Number(&n) && !Skip(0)) {
      return false;
    }
    if (key == "pids_limit") {
      spec.pids_limit = n;
    } else if (key == "memory_limit_bytes") {
      spec.memory_limit_bytes = static_cast<uint64_t>(n);
    } else if (key == "grace_seconds") {
      spec.grace_seconds = static_cast<int>(n);
    } else if (key == "log_max_bytes") {
      spec.log_max_bytes = static_cast<uint64_t>(n);
    } else if (key == "log_keep") {
      spec.log_keep = static_cast<int>(n);
    }
    return true;
  }

  // True if the character at i_ is one of `set`.
  bool At(std::string_view set) const {
    return i_ < s_.size() && set.find(s_[i_]) != std::string_view::npos;
  }
  void Space() {
    while (At(" \t\n\r")) {
      ++i_;
    }
  }
  bool Peek(char c) {
    Space();
    return i_ < s_.size() && s_[i_] == c;
  }
  bool Expect(char c) {
    if (!Peek(c)) {
      return false;
    }
    ++i_;
    return true;
  }

  bool Strings(std::vector<std::string>& out) {
    out.clear();
    if (!Expect('[')) {
      return Skip(0);
    }
    if (Expect(']')) {
      return true;
    }
    do {
      if (Peek('"') ? !String(&out.emplace_back()) : !Skip(1)) {
        return false;
      }
    } while (Expect(','));
    return Expect(']');
  }

  // A number (false, reading nothing, if there is none). An integer reads as Boost keeps it,
  // int64 or else uint64 (which Member's casts give back); anything else is 0.
  bool Number(int64_t* out) {
    Space();
    size_t start = i_;
    while (At("+-.eE0123456789")) {
      ++i_;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + i_;
    uint64_t u = 0;
    if (auto r = std::from_chars(first, last, *out); r.ec == std::errc() && r.ptr == last) {
      return true;
    }
    auto r = std::from_chars(first, last, u);
    *out = r.ec == std::errc() && r.ptr == last ? static_cast<int64_t>(u) : 0;
    return i_ > start;
  }

  // A string, unescaped into `out` (nullptr: skipped).
  bool String(std::string* out) {
    if (!Expect('"')) {
      return false;
    }
    std::string ignored;
    std::string& to = out != nullptr ? *out : ignored;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') {
        return true;
      }
      if (c != '\\') {
        to += c;
        continue;
      }
      char letter = i_ < s_.size() ? s_[i_++] : '\0';
      if (char plain = Unescaped(letter); plain != '\0') {
        to += plain;
        continue;
      }
      uint32_t cp = 0;
      if (letter != 'u' || !Hex4(&cp)) {
        return false;
      }
      if (cp >= 0xd800 && cp < 0xdc00) {  // a high surrogate: "\uDC00"-"\uDFFF" follows
        if (s_.substr(i_, 2) != "\\u") {
          return false;
        }
        i_ += 2;
        uint32_t low = 0;
        if (!Hex4(&low) || low < 0xdc00 || low > 0xdfff) {
          return false;
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
      }
      AppendUtf8(to, cp);
    }
    return false;
  }
  bool Hex4(uint32_t* cp) {
    const char* first = s_.data() + i_;
    if (s_.size() - i_ < 4 || std::from_chars(first, first + 4, *cp, 16).ptr != first + 4) {
      return false;
    }
    i_ += 4;
    return true;
  }
  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
      return;
    }
    int tail = cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;  // continuation bytes
    out += static_cast<char>(0xff << (7 - tail) | cp >> (6 * tail));
    for (int k = tail - 1; k >= 0; --k) {
      out += static_cast<char>(0x80 | (cp >> (6 * k) & 0x3f));
    }
  }

  // Skips any value; `depth` bounds the nesting so that no text can exhaust the stack.
  bool Skip(int depth) {
    Space();
    if (depth > 64 || i_ >= s_.size()) {
      return false;
    }
    char c = s_[i_];
    if (c == '"') {
      return String(nullptr);
    }
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++i_;
      if (Expect(close)) {
        return true;
      }
      do {
        if ((c == '{' && (!String(nullptr) || !Expect(':'))) || !Skip(depth + 1)) {
          return false;
        }
      } while (Expect(','));
      return Expect(close);
    }
    for (std::string_view word : {"true", "false", "null"}) {
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        return true;
      }
    }
    int64_t ignored;
    return Number(&ignored);
  }

  std::string_view s_;
  size_t i_ = 0;
};

Result<InstanceSpec> ParseSpec(const std::string& text) {
  InstanceSpec spec;
  // Members spec.json lacks read as 0, as in InstanceSpecFromJson.
  spec.grace_seconds = 0;
  spec.log_max_bytes = 0;
  spec.log_keep = 0;
  if (!JsonReader(text).ReadSpec(spec)) {
    return Status::Internal("spec.json is not a JSON object");
  }
  if (spec.id.empty() || spec.argv.empty()) {
    return Status::InvalidArgument("spec.json needs an id and a non-empty argv");
  }
  return spec;
}

// --- Cgroups ------------------------------------------------------------------------------
// What the shim needs of cgroup.cc (DetectCgroupLayout, InstanceCgroup), with the same
// decisions and paths: the daemon finds these groups again with
// InstanceCgroup::Attach(DetectCgroupLayout(), id) when it must kill what a lost shim left.
// A change of the layout there must be made here too (linux_launcher_test checks they agree).

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    size_t at = s.find(sep);
    std::string_view part = s.substr(0, at);
    if (!part.empty()) {
      out.push_back(part);
    }
    s.remove_prefix(at == std::string_view::npos ? s.size() : at + 1);
  }
  return out;
}

bool Contains(const std::vector<std::string_view>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::optional<std::string> Read(const std::string& path) {
  auto text = ReadFile(path);
  return text.ok() ? std::optional<std::string>(std::move(*text)) : std::nullopt;
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus("creating cgroup " + path, errno);
  }
  return Status::Ok();
}

// The value of `key` in a cgroup file of "key value" lines (memory.events, pids.events); 0 when
// the file or the key is missing.
int64_t Counter(const std::string& path, std::string_view key) {
  std::string text = Read(path).value_or("");
  for (std::string_view line : Split(text, '\n')) {
    auto kv = Split(line, ' ');
    int64_t n = 0;
    if (kv.size() == 2 && kv[0] == key &&
        std::from_chars(kv[1].data(), kv[1].data() + kv[1].size(), n).ec == std::errc()) {
      return n;
    }
  }
  return 0;
}

// Where the cgroup hierarchies are mounted and where this process sits in each, read once per
// process from /proc/self/cgroup and /proc/self/mountinfo (the latter costs as much as the
// rest of a short task's cgroup work): the spawner reads it before it forks its first shim,
// and every shim it forks inherits the answer.
struct CgroupMounts {
  // This process's group in each hierarchy (mount point + own path); empty where there is no
  // such hierarchy or the files could not be read.
  std::string v2, memory, pids;

  static const CgroupMounts& Get() {
    static const CgroupMounts m = Load();
    return m;
  }

 private:
  static CgroupMounts Load() {
    CgroupMounts m;
    auto self = Read("/proc/self/cgroup");
    auto mounts = Read("/proc/self/mountinfo");
    if (!self || !mounts) {
      return m;
    }
    // /proc/self/cgroup: "<id>:<controllers>:<path>"; the v2 entry has no controllers.
    std::string own_v2 = "/", own_memory = "/", own_pids = "/";
    for (std::string_view line : Split(*self, '\n')) {
      size_t a = line.find(':');
      size_t b = line.find(':', a + 1);
      if (a == std::string_view::npos || b == std::string_view::npos) {
        continue;
      }
      std::string_view controllers = line.substr(a + 1, b - a - 1);
      if (controllers.empty()) {
        own_v2 = line.substr(b + 1);
      } else if (Contains(Split(controllers, ','), "memory")) {
        own_memory = line.substr(b + 1);
      } else if (Contains(Split(controllers, ','), "pids")) {
        own_pids = line.substr(b + 1);
      }
    }
    auto group = [](std::string_view mount, const std::string& own) {
      return std::string(mount) + (own == "/" ? "" : own);
    };
    // mountinfo: "<id> <parent> <maj:min> <root> <mount point> ... - <fstype> <source> <opts>"
    for (std::string_view line : Split(*mounts, '\n')) {
      size_t dash = line.find(" - ");
      if (dash == std::string_view::npos) {
        continue;
      }
      auto head = Split(line.substr(0, dash), ' ');
      auto tail = Split(line.substr(dash + 3), ' ');
      if (head.size() < 5 || tail.empty()) {
        continue;
      }
      if (tail[0] == "cgroup2" && m.v2.empty()) {
        m.v2 = group(head[4], own_v2);
      } else if (tail[0] == "cgroup" && m.memory.empty() && tail.size() >= 3 &&
                 Contains(Split(tail[2], ','), "memory")) {
        m.memory = group(head[4], own_memory);
      } else if (tail[0] == "cgroup" && m.pids.empty() && tail.size() >= 3 &&
                 Contains(Split(tail[2], ','), "pids")) {
        m.pids = group(head[4], own_pids);
      }
    }
    return m;
  }
};

class ShimCgroup {
 public:
  // DetectCgroupLayout and InstanceCgroup::Create in one. Without `limit_memory`, a separate
  // v1 memory hierarchy is left out where a unified one can hold the tree: moving a process
  // into a v1 cgroup costs milliseconds, which short tasks would pay for nothing.
  // With `limit_pids`, the pids controller too: v2's where the unified tree has it, else a v1
  // pids hierarchy.
  static Result<ShimCgroup> Create(const std::string& name, bool limit_memory, bool limit_pids) {
    std::string memory_parent, unified_parent, pids_parent;
    bool memory_is_v2 = false, pids_is_v2 = false;
    const CgroupMounts& m = CgroupMounts::Get();
    if (!m.v2.empty() && ::access(m.v2.c_str(), W_OK) == 0) {
      unified_parent = m.v2 + "/berth";
      auto controllers = Read(m.v2 + "/cgroup.controllers");
      // The memory controller must be enabled for our subtree; this fails when the
      // daemon's own group holds processes (no internal processes in v2), and then v2
      // memory is off.
      if (controllers && controllers->find("memory") != std::string::npos &&
          MakeDir(unified_parent).ok() &&
          WriteFile(unified_parent + "/cgroup.subtree_control", "+memory").ok()) {
        memory_parent = unified_parent;
        memory_is_v2 = true;
      }
      if (limit_pids && controllers && controllers->find("pids") != std::string::npos &&
          MakeDir(unified_parent).ok() &&
          WriteFile(unified_parent + "/cgroup.subtree_control", "+pids").ok()) {
        pids_parent = unified_parent;
        pids_is_v2 = true;
      }
    }
    if (limit_pids && pids_parent.empty() && !m.pids.empty() &&
        ::access(m.pids.c_str(), W_OK) == 0) {
      pids_parent = m.pids + "/berth";
    }
    // Without a limit, the unified hierarchy (where there is one) holds the tree alone.
    if (memory_parent.empty() && !m.memory.empty() && (limit_memory || unified_parent.empty()) &&
        ::access(m.memory.c_str(), W_OK) == 0) {
      memory_parent = m.memory + "/berth";
    }
    ShimCgroup cg;
    if (!memory_parent.empty()) {
      if (auto s = MakeDir(memory_parent); !s.ok()) {
        return s;
      }
      if (auto s = MakeDir(memory_parent + "/" + name); !s.ok()) {
        return s;
      }
      cg.memory_dir_ = memory_parent + "/" + name;
      cg.memory_is_v2_ = memory_is_v2;
    }
    if (!unified_parent.empty()) {
      if (unified_parent == memory_parent) {
        cg.unified_dir_ = cg.memory_dir_;
      } else if (MakeDir(unified_parent).ok() && MakeDir(unified_parent + "/" + name).ok()) {
        cg.unified_dir_ = unified_parent + "/" + name;
      }
    }
    if (pids_is_v2) {
      cg.pids_dir_ = cg.unified_dir_;
    } else if (!pids_parent.empty() && MakeDir(pids_parent).ok() &&
               MakeDir(pids_parent + "/" + name).ok()) {
      cg.pids_dir_ = pids_parent + "/" + name;
    }
    return cg;
  }

  // At most `n` processes and threads in the group: a fork beyond it fails with EAGAIN.
  Status SetPidsLimit(int64_t n) const {
    if (pids_dir_.empty()) {
      return Status::FailedPrecondition("no pids cgroup is available on this machine");
    }
    return WriteFile(pids_dir_ + "/pids.max", std::to_string(n));
  }

  // How many forks the pids limit refused (pids.events "max"); 0 without a pids group.
  int64_t PidsLimitHits() const {
    return pids_dir_.empty() ? 0 : Counter(pids_dir_ + "/pids.events", "max");
  }

  // The unified group's directory, opened for clone3(CLONE_INTO_CGROUP); -1 without one.
  int OpenUnified() const {
    return unified_dir_.empty()
               ? -1
               : ::open(unified_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }

  // Puts `pid` into its groups; `in_unified`: it was born in the unified one.
  Status AddProcess(int pid, bool in_unified) const {
    std::string p = std::to_string(pid);
    if (in_unified && memory_dir_ == unified_dir_ && pids_dir_ == unified_dir_) {
      return Status::Ok();
    }
    if (!memory_dir_.empty() && !(in_unified && memory_dir_ == unified_dir_)) {
      if (auto s = WriteFile(memory_dir_ + "/cgroup.procs", p); !s.ok()) {
        return s;
      }
    }
    if (!in_unified && !unified_dir_.empty() && unified_dir_ != memory_dir_) {
      if (auto s = WriteFile(unified_dir_ + "/cgroup.procs", p); !s.ok()) {
        return s;
      }
    }
    if (!pids_dir_.empty() && pids_dir_ != unified_dir_) {
      return WriteFile(pids_dir_ + "/cgroup.procs", p);
    }
    return Status::Ok();
  }

  Status SetMemoryLimit(uint64_t bytes) const {
    if (memory_dir_.empty()) {
      return Status::FailedPrecondition("no memory cgroup is available on this machine");
    }
    if (memory_is_v2_) {
      if (auto s = WriteFile(memory_dir_ + "/memory.max", std::to_string(bytes)); !s.ok()) {
        return s;
      }
      // Kill the whole instance on OOM rather than one random process of it.
      (void)WriteFile(memory_dir_ + "/memory.oom.group", "1");
      (void)WriteFile(memory_dir_ + "/memory.swap.max", "0");
      return Status::Ok();
    }
    std::string v = std::to_string(bytes);
    if (auto s = WriteFile(memory_dir_ + "/memory.limit_in_bytes", v); !s.ok()) {
      return s;
    }
    // Without this, swap would let the instance exceed its limit instead of being killed.
    (void)WriteFile(memory_dir_ + "/memory.memsw.limit_in_bytes", v);
    (void)WriteFile(memory_dir_ + "/memory.swappiness", "0");
    return Status::Ok();
  }

  // The oom_kill counter of v2 memory.events or v1 memory.oom_control.
  int64_t OomKillCount() const {
    return memory_dir_.empty()
               ? 0
               : Counter(memory_dir_ + (memory_is_v2_ ? "/memory.events" : "/memory.oom_control"),
                         "oom_kill");
  }

  // Pids in the group (from the tree used for killing).
  std::vector<int> Processes() const {
    const std::string& dir = unified_dir_.empty() ? memory_dir_ : unified_dir_;
    std::vector<int> pids;
    if (dir.empty()) {
      return pids;
    }
    std::string text = Read(dir + "/cgroup.procs").value_or("");
    for (std::string_view line : Split(text, '\n')) {
      int pid = 0;
      if (std::from_chars(line.data(), line.data() + line.size(), pid).ec == std::errc()) {
        pids.push_back(pid);
      }
    }
    return pids;
  }

  // SIGKILL uses cgroup.kill where there is one: no fork can escape it.
  void Signal(int sig) const {
    if (sig == SIGKILL && !unified_dir_.empty() &&
        WriteFile(unified_dir_ + "/cgroup.kill", "1").ok()) {
      return;
    }
    for (int pid : Processes()) {
      ::kill(pid, sig);
    }
  }

  void Remove() const {
    for (const std::string* dir : {&unified_dir_, &memory_dir_, &pids_dir_}) {
      if (!dir->empty()) {
        ::rmdir(dir->c_str());
      }
    }
  }

 private:
  std::string memory_dir_;
  bool memory_is_v2_ = false;
  std::string unified_dir_;
  std::string pids_dir_;  // may be unified_dir_ (v2) or a v1 pids group
};

// --- The shim -----------------------------------------------------------------------------

// fork(), the child born in the cgroup `cgroup_fd` (when valid) by clone3's CLONE_INTO_CGROUP
// (Linux 5.7): moving a process in later by a write to cgroup.procs waits for an RCU grace
// period, 4-16 ms here and the largest cost of a short task's start. `*in_cgroup` says
// whether it was; where clone3 is refused (an older kernel, a seccomp filter), plain fork().
// The child then calls only async-signal-safe functions, as after fork().
pid_t ForkInto(int cgroup_fd, bool* in_cgroup) {
  *in_cgroup = false;
  if (cgroup_fd >= 0) {
    clone_args args{};
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
    long pid = ::syscall(SYS_clone3, &args, sizeof(args));
    if (pid >= 0) {
      *in_cgroup = true;
      return static_cast<pid_t>(pid);
    }
  }
  return fork();
}

// In a shim the spawner forked ahead (RunSpawner): the pipe on which it tells the spawner that
// its start is over, so that the spawner forks the next shim only then rather than on the
// same core during this start. -1 elsewhere.
int spawner_taken_fd = -1;

// With `keep_open`, the pipe stays open after the line: the shim closes it when it ends, and
// that close is how the launcher hears of the end (sooner than the shim's pidfd, which is
// told only once the shim's memory is torn down).
void SendHandshake(int& fd, const std::string& line, bool keep_open = false) {
  if (fd >= 0) {
    std::string l = line + "\n";
    (void)!::write(fd, l.data(), l.size());
    if (!keep_open) {
      ::close(fd);
      fd = -1;
    }
  }
  if (spawner_taken_fd >= 0) {
    (void)!::write(spawner_taken_fd, "t", 1);
    ::close(spawner_taken_fd);
    spawner_taken_fd = -1;
  }
}

// Runs in the forked child before exec: async-signal-safe calls only. Waits for the parent to
// put it into its cgroups (a byte on `go_fd`), enters its sandbox, then execs. On failure
// writes an ExecFailure to `error_fd` (close-on-exec, so a successful exec closes it with
// nothing written).
[[noreturn]] void ChildExec(int go_fd, int error_fd, int out_fd, int err_fd, SandboxPlan& plan,
                            const char* cwd, char* const* argv, char* const* envp) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  setpgid(0, 0);
  char go = 0;
  while (read(go_fd, &go, 1) < 0 && errno == EINTR) {
  }
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) {
    dup2(devnull, 0);
  }
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  ExecFailure e;
  // As its user, so that a working directory it may not enter fails here, not later.
  if (e.error = EnterSandbox(plan, &e.sandbox_step); e.error == 0) {
    if (chdir(cwd) != 0) {
      e.error = errno;
    } else {
      execvpe(argv[0], argv, envp);
      e.error = errno;
    }
  }
  (void)!write(error_fd, &e, sizeof(e));
  _exit(127);
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

class Shim {
 public:
  Shim(std::string dir, InstanceSpec spec, int handshake_fd)
      : dir_(std::move(dir)),
        spec_(std::move(spec)),
        handshake_fd_(handshake_fd),
        log_(dir_ + "/logs", LogRotation{spec_.log_max_bytes, spec_.log_keep}) {}

  int Run() {
    if (auto s = log_.Open(); !s.ok()) {
      SendHandshake(handshake_fd_, "error " + s.message());
      return 1;
    }
    // Held until this shim exits (the descriptor is close-on-exec: not the program's).
    if (!spec_.address_claim.empty() &&
        (claim_fd_ = ClaimAddress(spec_.address_claim)) < 0) {
      return FailStart("its address is taken by another berth daemon's instance (" +
                       spec_.address_claim + ": " + std::strerror(errno) + ")");
    }
    auto cg = ShimCgroup::Create(spec_.id, spec_.memory_limit_bytes > 0, spec_.pids_limit > 0);
    if (!cg.ok()) {
      return FailStart("cannot create cgroup: " + cg.status().message());
    }
    cgroup_ = std::move(*cg);
    if (spec_.memory_limit_bytes > 0) {
      if (auto s = cgroup_.SetMemoryLimit(spec_.memory_limit_bytes); !s.ok()) {
        log_.Note("memory limit not enforced: " + s.message());
      }
    }
    if (spec_.pids_limit > 0) {
      if (auto s = cgroup_.SetPidsLimit(spec_.pids_limit); !s.ok()) {
        log_.Note("pids limit not enforced: " + s.message());
      }
    }
    if (!Spawn()) {
      cgroup_.Remove();  // empty: nothing ran in it
      ReleaseAddress(spec_.address_claim, claim_fd_);
      return 1;
    }
    Loop();
    Finish();
    ReleaseAddress(spec_.address_claim, claim_fd_);  // after the program and its tree are gone
    // The end is recorded and nothing of the instance is left: the launcher may hear of it.
    ::close(handshake_fd_);
    handshake_fd_ = -1;
    return 0;
  }

  Status SetUpSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGCHLD);
    signal_fd_ = signalfd(-1, &wanted, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0) {
      return ErrnoStatus("creating signalfd", errno);
    }
    return Status::Ok();
  }

 private:
  int FailStart(const std::string& why) {
    log_.Note(why);
    (void)log_.Flush();
    ExitRecord r;
    r.exit_code = 127;
    r.ended_at = UnixMillisNow();
    r.error = why;
    (void)WriteFileAtomic(dir_ + "/exit.json", ExitRecordJson(r), 0644,
                          Durability::kProcessCrash);
    SendHandshake(handshake_fd_, "error " + why);
    return 1;
  }

  bool Spawn() {
    int out[2], err[2], go[2], exec_err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0 ||
        pipe2(exec_err, O_CLOEXEC) != 0) {
      FailStart(std::string("cannot create pipes: ") + std::strerror(errno));
      return false;
    }
    std::vector<std::string> argv = spec_.argv;
    std::vector<std::string> env = spec_.env;
    std::vector<char*> cargv = CStrings(argv);
    std::vector<char*> cenv = CStrings(env);
    // A bundle the program may write to gets a layer of this instance's own.
    std::string layer;
    for (const BindMount& b : spec_.sandbox.binds) {
      if (b.layered && layer.empty()) {
        layer = dir_ + "/layer";
        if (auto s = PrepareLayer(layer, spec_.sandbox.uid, spec_.sandbox.gid); !s.ok()) {
          FailStart("cannot prepare its writable layer: " + s.message());
          return false;
        }
      }
    }
    SandboxPlan plan = PlanSandbox(spec_.sandbox, layer);
    int cgroup_fd = cgroup_.OpenUnified();
    bool in_unified = false;
    pid_t pid = ForkInto(cgroup_fd, &in_unified);
    if (pid < 0) {
      FailStart(std::string("cannot fork: ") + std::strerror(errno));
      return false;
    }
    if (pid == 0) {
      ChildExec(go[0], exec_err[1], out[1], err[1], plan, spec_.cwd.c_str(), cargv.data(),
                cenv.data());
    }
    // A larger pipe lets a chatty program run ahead of the log writer instead of blocking.
    ::fcntl(out[0], F_SETPIPE_SZ, 1 << 20);
    ::fcntl(err[0], F_SETPIPE_SZ, 1 << 20);
    ::close(out[1]);
    ::close(err[1]);
    ::close(go[0]);
    ::close(exec_err[1]);
    if (cgroup_fd >= 0) {
      ::close(cgroup_fd);
    }
    pid_ = pid;
    if (auto s = cgroup_.AddProcess(pid, in_unified); !s.ok()) {
      log_.Note("cannot add the process to its cgroup: " + s.message());
    }
    (void)!::write(go[1], "g", 1);
    ::close(go[1]);
    std::optional<ExecFailure> child = ReadExecFailure(exec_err[0]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    if (child) {
      waitpid(pid, nullptr, 0);
      ::close(out_fd_);
      ::close(err_fd_);
      FailStart("cannot start " + spec_.argv[0] + " in " + spec_.cwd + ": " +
                DescribeExecFailure(plan, *child) +
                HiddenProgramHint(spec_.sandbox, spec_.argv[0], *child));
      return false;
    }
    ShimRecord rec{static_cast<int>(getpid()), pid, UnixMillisNow(),
                   static_cast<int64_t>(ProcessStartTicks(getpid()).value_or(0))};
    if (auto s = WriteFileAtomic(dir_ + "/shim.json", ShimRecordJson(rec), 0644,
                                 Durability::kProcessCrash);
        !s.ok()) {
      log_.Note("cannot record the shim: " + s.message());
    }
    SendHandshake(handshake_fd_, "ok " + std::to_string(pid), /*keep_open=*/true);
    return true;
  }

  void Loop() {
    // 64 KB: a quarter of it halved log ingest (228 vs 515 MB/s in bench/runtime.sh). Its pages
    // stay resident once a burst of output has touched them: an idle shim that never logged
    // stays at ~120 KB, one that did at most ~64 KB more, within the 256 KB bound.
    char buf[64 << 10];
    bool exited = false;
    std::optional<Clock::time_point> kill_at;      // set by a stop request
    std::optional<Clock::time_point> drain_until;  // after the program exited
    while (true) {
      pollfd fds[3] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}, {signal_fd_, POLLIN, 0}};
      int timeout_ms = -1;
      auto now = Clock::now();
      for (const auto& deadline : {kill_at, drain_until}) {
        if (deadline) {
          auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now).count();
          int t = static_cast<int>(std::max<int64_t>(0, ms));
          timeout_ms = timeout_ms < 0 ? t : std::min(timeout_ms, t);
        }
      }
      int n = ::poll(fds, 3, timeout_ms);
      if (n < 0 && errno != EINTR) {
        break;
      }
      for (int i = 0; i < 2; ++i) {
        int& fd = i == 0 ? out_fd_ : err_fd_;
        if (fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
          ssize_t r = ::read(fd, buf, sizeof(buf));
          if (r > 0) {
            log_.Feed(i == 0 ? "stdout" : "stderr", std::string_view(buf, static_cast<size_t>(r)));
          } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
            ::close(fd);
            fd = -1;
          }
        }
      }
      (void)log_.Flush();
      if (fds[2].revents & POLLIN) {
        signalfd_siginfo si;
        while (::read(signal_fd_, &si, sizeof(si)) == sizeof(si)) {
          if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !kill_at && !exited) {
            log_.Note("stopping: SIGTERM to the process tree, SIGKILL after " +
                      std::to_string(spec_.grace_seconds) + "s");
            ::kill(-pid_, SIGTERM);
            cgroup_.Signal(SIGTERM);
            kill_at = Clock::now() + std::chrono::seconds(spec_.grace_seconds);
          }
        }
      }
      // As a subreaper the shim inherits orphaned descendants: reap them all, note the program.
      int status = 0;
      pid_t w;
      while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
        if (w == pid_ && !exited) {
          exited = true;
          status_ = status;
          if (kill_at) {
            // Stopping: what the program runs behind it (a wrapper such as bwrap or sh exits
            // first) keeps the rest of the grace period to shut down cleanly; Finish kills
            // whatever is left.
            drain_until = *kill_at;
          } else {
            // The program is gone; what it left running dies with it, and its output gets a
            // moment to drain.
            KillTree();
            drain_until = Clock::now() + std::chrono::milliseconds(500);
          }
        }
      }
      now = Clock::now();
      if (kill_at && !exited && now >= *kill_at) {
        log_.Note("grace period over: SIGKILL");
        KillTree();
        kill_at.reset();
      }
      if (exited && ((out_fd_ < 0 && err_fd_ < 0) || (drain_until && now >= *drain_until))) {
        break;
      }
    }
  }

  void KillTree() {
    ::kill(-pid_, SIGKILL);
    // Most programs leave nothing behind: a look is cheaper than cgroup.kill.
    if (!cgroup_.Processes().empty()) {
      cgroup_.Signal(SIGKILL);
    }
  }

  void Finish() {
    for (int* fd : {&out_fd_, &err_fd_}) {
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
    }
    // No orphan survives: the process group, then the cgroup until it is empty (bounded).
    ::kill(-pid_, SIGKILL);
    for (int i = 0; i < 200; ++i) {
      if (cgroup_.Processes().empty()) {
        break;
      }
      cgroup_.Signal(SIGKILL);
      timespec ten_ms{0, 10 * 1000 * 1000};
      ::nanosleep(&ten_ms, nullptr);
      while (waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    }
    ExitRecord r;
    r.ended_at = UnixMillisNow();
    if (WIFEXITED(status_)) {
      r.exit_code = WEXITSTATUS(status_);
    } else if (WIFSIGNALED(status_)) {
      r.signal = WTERMSIG(status_);
    }
    r.oom_killed = cgroup_.OomKillCount() > 0;
    log_.FinishPartial();
    if (int64_t refused = cgroup_.PidsLimitHits(); refused > 0) {
      log_.Note("its pids-limit of " + std::to_string(spec_.pids_limit) + " refused " +
                std::to_string(refused) + " forks (raise pids-limit in the definition)");
    }
    if (r.oom_killed) {
      log_.Note("exited: killed by the kernel for exceeding its memory limit");
    } else if (r.signal) {
      log_.Note("exited: killed by signal " + std::to_string(r.signal) + " (" +
                strsignal(r.signal) + ")");
    } else {
      log_.Note("exited with code " + std::to_string(r.exit_code));
    }
    (void)log_.Flush();
    (void)WriteFileAtomic(dir_ + "/exit.json", ExitRecordJson(r), 0644,
                          Durability::kProcessCrash);
    cgroup_.Remove();
  }

  std::string dir_;
  InstanceSpec spec_;
  int handshake_fd_;
  LogWriter log_;
  ShimCgroup cgroup_;
  pid_t pid_ = -1;
  int claim_fd_ = -1;  // the address claim, held while this shim runs
  int status_ = 0;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int signal_fd_ = -1;
};

}  // namespace

int RunShim(const std::string& instance_dir, int handshake_fd) {
  // The program must not inherit the handshake pipe: the launcher reads it to the end. Started
  // without one (by hand), the shim must not close what later takes its number.
  if (handshake_fd >= 0 && ::fcntl(handshake_fd, F_SETFD, FD_CLOEXEC) != 0) {
    handshake_fd = -1;
  }
  auto text = ReadFile(instance_dir + "/spec.json");
  if (!text.ok()) {
    SendHandshake(handshake_fd, "error " + text.status().message());
    return 1;
  }
  auto spec = ParseSpec(*text);
  if (!spec.ok()) {
    SendHandshake(handshake_fd, "error " + spec.status().message());
    return 1;
  }
  // Orphaned descendants of the program become the shim's children, so it can reap them and
  // nothing of the tree outlives the instance unnoticed.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  Shim shim(instance_dir, std::move(*spec), handshake_fd);
  if (auto s = shim.SetUpSignals(); !s.ok()) {
    SendHandshake(handshake_fd, "error " + s.message());
    return 1;
  }
  return shim.Run();
}

namespace {

// Reads one start request from the launcher's socket: the instance directory, with the
// handshake pipe's write end attached. False once the socket is closed (or broken).
bool ReceiveStart(int socket_fd, std::string* instance_dir, int* handshake_fd) {
  while (true) {
    char dir[4096];
    iovec iov{dir, sizeof(dir)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    *handshake_fd = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        std::memcpy(handshake_fd, CMSG_DATA(c), sizeof(int));
      }
    }
    if (*handshake_fd < 0) {
      continue;  // nobody to answer
    }
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
      SendHandshake(*handshake_fd, "error the instance directory's path is too long");
      continue;
    }
    instance_dir->assign(dir, static_cast<size_t>(n));
    return true;
  }
}

// Forks a shim ahead (RunSpawner): it waits for the next request on `socket_fd` itself and
// then runs as `berth-shim shim DIR` would (own session, output in DIR/shim.log). Returns the
// read end of its `taken` pipe, or -1 when it cannot be forked (with errno). `others`: the
// spawner's pipes from the shims forked before, which this one must not hold.
int ForkAhead(int socket_fd, const std::vector<int>& others) {
  int taken[2];
  if (pipe2(taken, O_CLOEXEC) != 0) {
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int error = errno;
    ::close(taken[0]);
    ::close(taken[1]);
    errno = error;
    return -1;
  }
  if (pid > 0) {
    ::close(taken[1]);
    return taken[0];
  }
  ::close(taken[0]);
  for (int fd : others) {
    ::close(fd);
  }
  ::signal(SIGCHLD, SIG_DFL);
  // A spawner killed meanwhile must not take this shim with it when it says it is taken.
  ::signal(SIGPIPE, SIG_IGN);
  std::string instance_dir;
  int handshake_fd = -1;
  if (!ReceiveStart(socket_fd, &instance_dir, &handshake_fd)) {
    _exit(0);
  }
  spawner_taken_fd = taken[1];
  ::close(socket_fd);
  ::setsid();
  int log =
      ::open((instance_dir + "/shim.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log >= 0) {
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::close(log);
  }
  int code = RunShim(instance_dir, handshake_fd);
  std::fflush(nullptr);
  _exit(code);
}

}  // namespace

int RunSpawner(int socket_fd) {
  // Its shims are reaped by the kernel; the launcher hears of their ends on their handshake
  // pipes.
  ::signal(SIGCHLD, SIG_IGN);
  (void)CgroupMounts::Get();  // read once here, inherited by every shim forked below
  ::tzset();                  // so is the time zone, which log lines would read per shim
  // Two shims are always forked ahead and wait for the next requests themselves, so that a
  // start, or two at once, waits for no fork. Once a shim's start is over it says so on its
  // `taken` pipe (SendHandshake), and the spawner forks another: not earlier, so that the
  // fork does not compete with that start for its core. When a `taken` pipe closes unsaid,
  // its shim found the socket closed, or died during its start: the spawner ends in the
  // first case only.
  constexpr size_t kAhead = 2;
  std::vector<int> taken;
  while (true) {
    while (taken.size() < kAhead) {
      int fd = ForkAhead(socket_fd, taken);
      if (fd >= 0) {
        taken.push_back(fd);
        continue;
      }
      if (!taken.empty()) {
        break;  // out of processes: the shims already forked serve meanwhile
      }
      // None at all: this request is answered, the next gets another try.
      std::string dir;
      int handshake_fd = -1;
      int error = errno;
      if (!ReceiveStart(socket_fd, &dir, &handshake_fd)) {
        return 0;
      }
      SendHandshake(handshake_fd,
                    std::string("error cannot fork the shim: ") + std::strerror(error));
    }
    std::vector<pollfd> fds;
    for (int fd : taken) {
      fds.push_back({fd, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      return 1;
    }
    bool closed_unsaid = false;
    for (const pollfd& p : fds) {
      if ((p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
        continue;
      }
      char byte = 0;
      ssize_t n;
      while ((n = ::read(p.fd, &byte, 1)) < 0 && errno == EINTR) {
      }
      closed_unsaid = closed_unsaid || n != 1;
      ::close(p.fd);
      taken.erase(std::find(taken.begin(), taken.end(), p.fd));
    }
    if (closed_unsaid) {
      pollfd p{socket_fd, POLLIN, 0};
      if (::poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR)) != 0) {
        return 0;
      }
    }
  }
}

}  // namespace berth
