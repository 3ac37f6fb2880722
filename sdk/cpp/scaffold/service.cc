#include <berth/service.h>

#include <string>

int main() {
  berth::Service svc;

  svc.add_parameter("greeting_phrase", std::string("Hello"));

  svc.entrypoint("hello", {"name"}, [&](std::string name) -> std::string {
    std::string greeting_phrase = svc.get_parameter<std::string>("greeting_phrase");
    if (name == "World") {
      berth::notify("Someone is trying to greet the World, too time consuming. Skipping!",
                    berth::Severity::kWarning);
      return "Greeting failed";
    }
    berth::log_info("Greeting someone with the name: " + name);
    return greeting_phrase + " " + name;
  });

  return svc.run();
}
