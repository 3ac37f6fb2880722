// The one berth binary: `berth serve` runs the daemon; every other subcommand is a client of
// its REST API.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <string_view>

#include "cli/cli.h"
#include "common/suggest.h"
#include "daemon/daemon.h"

namespace {

// Walks the command words of argv before CLI11 parses it, so that a mistyped command gets the
// nearest real one and the list (CLI11 would say "A subcommand is required" or "arguments were
// not expected"), `berth` alone prints the help, and a group alone names its commands.
// Returns the exit code when it answered, or -1 to let CLI11 parse.
int AnswerCommandWords(CLI::App& app, int argc, char** argv) {
  CLI::App* at = &app;
  std::string path = "berth";
  auto all_of = [](CLI::App* group) {
    return group->get_subcommands([](CLI::App*) { return true; });
  };
  auto names_of = [](CLI::App* group) {
    std::vector<std::string> names;
    for (CLI::App* s :
         group->get_subcommands([](CLI::App* s) { return !s->get_group().empty(); })) {
      names.push_back(s->get_name());
    }
    return names;
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.starts_with("-") || all_of(at).empty()) {
      return -1;  // an option, or a command's own arguments: CLI11's business
    }
    CLI::App* next = nullptr;
    for (CLI::App* s : all_of(at)) {
      if (s->check_name(arg)) {
        next = s;
      }
    }
    if (next == nullptr) {
      std::vector<std::string> names = names_of(at);
      std::cerr << fmt::format(
          "{}: unknown command '{}'{}\ncommands: {}\nRun '{} --help' for what each does.\n", path,
          arg, berth::DidYouMean(arg, names), fmt::join(names, ", "), path);
      return 2;
    }
    at = next;
    path += " " + next->get_name();
  }
  if (all_of(at).empty() || at->get_require_subcommand_min() == 0) {
    return -1;
  }
  if (at == &app) {
    std::cout << app.help();
    return 0;
  }
  std::cerr << fmt::format("{}: which command? one of: {}\n\n", path, fmt::join(names_of(at), ", "))
            << at->help();
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "berth: a self-hosted service platform. Deploy a folder or a template, get a "
      "supervised, versioned service behind a URL."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "berth 0.1.0");
  berth::AddServeCommand(app);
  berth::AddClientCommands(app);
  if (int rc = AnswerCommandWords(app, argc, argv); rc >= 0) {
    return rc;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "berth: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
