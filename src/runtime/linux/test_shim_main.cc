// `test_shim shim DIR`: the shim entry point alone, for the launcher tests.
#include <string>

#include "runtime/linux/shim.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    return 2;
  }
  return berth::RunShim(argv[2], 3);
}
