// The C++ SDK's peer in bench/sdk.sh: a bare Beast coroutine server doing the same work as
// the scaffold's hello entrypoint (parse {"name": ...}, answer "Hello <name>" as JSON), with
// no SDK around it. Listens on $HOST:$PORT.
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <cstdlib>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

asio::awaitable<void> Session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(stream, buffer, req, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      co_return;
    }
    http::response<http::string_body> res{http::status::ok, req.version()};
    boost::system::error_code jec;
    auto body = boost::json::parse(req.body(), jec);
    if (jec || !body.is_object() || !body.as_object().contains("name") ||
        !body.at("name").is_string()) {
      res.result(http::status::unprocessable_entity);
      res.body() = R"({"error":"name"})";
    } else {
      res.body() = boost::json::serialize(
          boost::json::value("Hello " + std::string(body.at("name").as_string())));
    }
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    if (wec || !res.keep_alive()) {
      co_return;
    }
  }
}

asio::awaitable<void> Listen(tcp::acceptor& acceptor) {
  for (;;) {
    tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), Session(std::move(s)), asio::detached);
  }
}

int main() {
  const char* host = std::getenv("HOST");
  const char* port = std::getenv("PORT");
  asio::io_context io(1);
  tcp::acceptor acceptor(io, {asio::ip::make_address(host ? host : "127.0.0.1"),
                              static_cast<unsigned short>(std::atoi(port ? port : "8080"))});
  asio::co_spawn(io, Listen(acceptor), asio::detached);
  io.run();
}
