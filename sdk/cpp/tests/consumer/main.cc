// Answers one request through the SDK without a socket and exits 0 when the answer is right.
#include <berth/service.h>

#include <iostream>

int main() {
  berth::Service svc;
  svc.add_parameter("greeting_phrase", std::string("Hello"));
  svc.entrypoint("hello", {"name"}, [&](std::string name) -> std::string {
    return svc.get_parameter<std::string>("greeting_phrase") + " " + name;
  });
  berth::Response r = svc.handle("POST", "/hello", R"({"name": "Ada"})");
  if (r.status != 200 || r.body != R"("Hello Ada")") {
    std::cerr << "unexpected answer " << r.status << " " << r.body << "\n";
    return 1;
  }
  std::cout << "ok: " << r.body << "\n";
  return 0;
}
