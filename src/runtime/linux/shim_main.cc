// berth-shim: the per-instance shim as a program of its own, `berth-shim shim DIR`, spawned by
// LinuxLauncher from beside the berth binary with the handshake pipe on fd 3 (see shim.h); or
// `berth-shim spawner`, the launcher's long-lived child that forks the shims instead, so that
// an instance's start does not pay for an exec of this program.
//
// One runs for every instance, for the instance's whole life, so its memory is multiplied by
// the number of instances. `berth shim`, the whole berth binary, cost ~2 MB of private memory
// per instance; berth-shim is built from its few sources only (src/runtime/CMakeLists.txt)
// and needs ~160 KB, most of it libc's and the dynamic loader's own pages. The launcher
// recognises its shims by pid and start time (shim.json); the "shim" argument is kept so that
// the records of older shims, which lack the start time, are recognised by their command line
// ("shim\0<dir>\0"), those of an earlier `berth shim` as well.
//
// Built without exceptions and with the C++ runtime linked in, the shim would still carry the
// runtime's unwinder, exception objects and demangler (~90 KB, all of it mapped into every
// shim), pulled in only by the paths that throw: operator new's bad_alloc and the
// __throw_* helpers libstdc++'s containers call on misuse. Both are replaced below by what a
// libstdc++ built without exceptions does there: report and abort. (Sanitizer builds keep
// exceptions and the shared runtime, and with them libstdc++'s own versions of these.)
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "runtime/linux/shim.h"

#ifndef __cpp_exceptions
namespace {
[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "berth-shim: %s\n", what);
  std::abort();
}
}  // namespace

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) {
    Die("out of memory");
  }
  return p;
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

// The helpers the containers of the shim's code call (a link that needs another one fails
// with duplicate symbols, libstdc++'s own file of them being pulled in: add it here).
namespace std {
void __throw_bad_alloc() { Die("out of memory"); }
void __throw_bad_array_new_length() { Die("bad array new length"); }
void __throw_length_error(const char* what) { Die(what); }
void __throw_logic_error(const char* what) { Die(what); }
void __throw_out_of_range_fmt(const char* format, ...) { Die(format); }
}  // namespace std
#endif

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "spawner") == 0) {
    // Started by the launcher with its socket on fd 3 (shim.h).
    return berth::RunSpawner(3);
  }
  if (argc != 3 || std::strcmp(argv[1], "shim") != 0) {
    std::fputs(
        "usage: berth-shim shim INSTANCE_DIR | berth-shim spawner (started by berth, not "
        "by hand)\n",
        stderr);
    return 2;
  }
  // The launcher spawns this process (posix_spawn, a new session) and waits for it: the shim
  // proper is its child, re-parented away from the daemon so that it never becomes the
  // daemon's zombie. Forking here is cheap (a small process); forking in the daemon copied
  // the daemon's page tables for every instance and step.
  pid_t child = fork();
  if (child < 0) {
    std::perror("berth-shim: fork");
    return 1;
  }
  if (child > 0) {
    return 0;
  }
  return berth::RunShim(argv[2], 3);
}
