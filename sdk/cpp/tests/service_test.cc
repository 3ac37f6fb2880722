// Service without sockets: argument types and their validation, parameters, the OpenAPI
// document and the fixed routes, all through Service::handle (the server's own dispatcher).
#include "berth/service.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_env.h"

namespace geo {

struct Point {
  double x = 0;
  double y = 0;
};

Point tag_invoke(boost::json::value_to_tag<Point>, const boost::json::value& v) {
  const boost::json::object& o = v.as_object();
  return {boost::json::value_to<double>(o.at("x")), boost::json::value_to<double>(o.at("y"))};
}

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const Point& p) {
  v = {{"x", p.x}, {"y", p.y}};
}

boost::json::object tag_invoke(berth::schema_tag<Point>) {
  return {{"type", "object"},
          {"properties", {{"x", {{"type", "number"}}}, {"y", {{"type", "number"}}}}},
          {"required", {"x", "y"}}};
}

// Has conversions but no schema overload.
struct Tag {
  std::string label;
};

Tag tag_invoke(boost::json::value_to_tag<Tag>, const boost::json::value& v) {
  return {std::string(v.as_object().at("label").as_string())};
}

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const Tag& t) {
  v = {{"label", t.label}};
}

}  // namespace geo

namespace berth {
namespace {

using testing::ScopedEnv;

boost::json::value Json(std::string_view text) { return boost::json::parse(text); }

std::string ErrorMessage(const Response& r) {
  return std::string(Json(r.body).at("error").at("message").as_string());
}

std::string ErrorCode(const Response& r) {
  return std::string(Json(r.body).at("error").at("code").as_string());
}

std::string Header(const Response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

class ServiceTest : public ::testing::Test {
 protected:
  ScopedEnv env_;
};

std::string ToUpper(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return s;
}

TEST_F(ServiceTest, HelloExampleFromTheTutorial) {
  Service svc;
  svc.add_parameter("greeting_phrase", std::string("Hello"));
  svc.entrypoint("hello", {"name"}, [&](std::string name) -> std::string {
    if (name == "World") {
      return "Greeting failed";
    }
    return svc.get_parameter<std::string>("greeting_phrase") + " " + name;
  });
  Response r = svc.handle("POST", "/hello", R"({"name": "Ada"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"("Hello Ada")");
  EXPECT_EQ(svc.handle("POST", "/hello", R"({"name": "World"})").body, R"("Greeting failed")");
}

TEST_F(ServiceTest, WrongArgumentTypeNamesTheArgument) {
  Service svc;
  svc.entrypoint("hello", {"name"}, [](std::string name) { return name; });
  Response r = svc.handle("POST", "/hello", R"({"name": 5})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(ErrorCode(r), "invalid_argument");
  EXPECT_EQ(ErrorMessage(r), "argument 'name': expected string, got number");
}

TEST_F(ServiceTest, MissingAndUnknownArgumentsAreNamed) {
  Service svc;
  svc.entrypoint("add", {"a", "b"}, [](int a, int b) { return a + b; });
  Response missing = svc.handle("POST", "/add", R"({"a": 1})");
  EXPECT_EQ(missing.status, 422);
  EXPECT_EQ(ErrorMessage(missing), "argument 'b': missing");
  Response unknown = svc.handle("POST", "/add", R"({"a": 1, "b": 2, "c": 3})");
  EXPECT_EQ(unknown.status, 422);
  EXPECT_EQ(ErrorMessage(unknown), "argument 'c': unknown argument for add; accepted: a, b");
  EXPECT_EQ(svc.handle("POST", "/add", R"({"b": 2, "a": 40})").body, "42");
}

TEST_F(ServiceTest, MalformedJsonIs400AndANonObjectIs422) {
  Service svc;
  svc.entrypoint("hello", {"name"}, [](std::string name) { return name; });
  Response bad = svc.handle("POST", "/hello", R"({"name": )");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(ErrorCode(bad), "bad_request");
  Response array = svc.handle("POST", "/hello", R"(["Ada"])");
  EXPECT_EQ(array.status, 422);
  EXPECT_EQ(ErrorMessage(array),
            "the request body must be a JSON object of named arguments, got array");
}

TEST_F(ServiceTest, IntegersAreCheckedForTypeAndRange) {
  Service svc;
  svc.entrypoint("i32", {"n"}, [](int n) { return n; });
  svc.entrypoint("i64", {"n"}, [](std::int64_t n) { return n; });
  EXPECT_EQ(svc.handle("POST", "/i32", R"({"n": -7})").body, "-7");
  EXPECT_EQ(svc.handle("POST", "/i64", R"({"n": 9007199254740993})").body, "9007199254740993");
  Response fraction = svc.handle("POST", "/i32", R"({"n": 1.5})");
  EXPECT_EQ(fraction.status, 422);
  EXPECT_EQ(ErrorMessage(fraction), "argument 'n': expected integer, got number");
  Response big = svc.handle("POST", "/i32", R"({"n": 4294967296})");
  EXPECT_EQ(big.status, 422);
  EXPECT_EQ(ErrorMessage(big), "argument 'n': integer out of range: 4294967296");
  EXPECT_EQ(ErrorMessage(svc.handle("POST", "/i64", R"({"n": "3"})")),
            "argument 'n': expected integer, got string");
}

TEST_F(ServiceTest, NumbersAcceptIntegersAndAreWrittenAsPythonWouldWriteThem) {
  Service svc;
  svc.entrypoint("half", {"x"}, [](double x) { return x / 2; });
  EXPECT_EQ(svc.handle("POST", "/half", R"({"x": 1})").body, "0.5");
  EXPECT_EQ(svc.handle("POST", "/half", R"({"x": 6.0})").body, "3.0");
  EXPECT_EQ(svc.handle("POST", "/half", R"({"x": 3e300})").body, "1.5e+300");
  EXPECT_EQ(ErrorMessage(svc.handle("POST", "/half", R"({"x": true})")),
            "argument 'x': expected number, got boolean");
}

TEST_F(ServiceTest, BooleansAreStrict) {
  Service svc;
  svc.entrypoint("neg", {"b"}, [](bool b) { return !b; });
  EXPECT_EQ(svc.handle("POST", "/neg", R"({"b": true})").body, "false");
  EXPECT_EQ(ErrorMessage(svc.handle("POST", "/neg", R"({"b": 1})")),
            "argument 'b': expected boolean, got number");
}

TEST_F(ServiceTest, VectorsReportTheIndexOfABadItem) {
  Service svc;
  svc.entrypoint("sum", {"xs"}, [](const std::vector<int>& xs) {
    int total = 0;
    for (int x : xs) {
      total += x;
    }
    return total;
  });
  svc.entrypoint("words", {"text"}, [](std::string text) {
    std::vector<std::string> out;
    std::string word;
    for (char c : text + " ") {
      if (c == ' ') {
        if (!word.empty()) {
          out.push_back(word);
        }
        word.clear();
      } else {
        word += c;
      }
    }
    return out;
  });
  svc.entrypoint("flags", {"n"}, [](int n) { return std::vector<bool>(n, true); });
  EXPECT_EQ(svc.handle("POST", "/sum", R"({"xs": [1, 2, 3]})").body, "6");
  EXPECT_EQ(svc.handle("POST", "/sum", R"({"xs": []})").body, "0");
  EXPECT_EQ(ErrorMessage(svc.handle("POST", "/sum", R"({"xs": [1, "2"]})")),
            "argument 'xs[1]': expected integer, got string");
  EXPECT_EQ(ErrorMessage(svc.handle("POST", "/sum", R"({"xs": {"a": 1}})")),
            "argument 'xs': expected array, got object");
  EXPECT_EQ(svc.handle("POST", "/words", R"({"text": "a bc  d"})").body, R"(["a","bc","d"])");
  EXPECT_EQ(svc.handle("POST", "/flags", R"({"n": 2})").body, "[true,true]");
}

TEST_F(ServiceTest, OptionalArgumentsMayBeLeftOutOrNull) {
  Service svc;
  svc.entrypoint(
      "greet", {"name", "title"},
      [](std::string name, std::optional<std::string> title) -> std::optional<std::string> {
        if (name.empty()) {
          return std::nullopt;
        }
        return title ? *title + " " + name : name;
      });
  EXPECT_EQ(svc.handle("POST", "/greet", R"({"name": "Ada"})").body, R"("Ada")");
  EXPECT_EQ(svc.handle("POST", "/greet", R"({"name": "Ada", "title": null})").body, R"("Ada")");
  EXPECT_EQ(svc.handle("POST", "/greet", R"({"name": "Ada", "title": "Dr"})").body, R"("Dr Ada")");
  EXPECT_EQ(svc.handle("POST", "/greet", R"({"name": ""})").body, "null");
  EXPECT_EQ(ErrorMessage(svc.handle("POST", "/greet", R"({"name": "Ada", "title": 1})")),
            "argument 'title': expected string, got number");
  EXPECT_EQ(ErrorMessage(svc.handle("POST", "/greet", R"({"title": "Dr"})")),
            "argument 'name': missing");
}

TEST_F(ServiceTest, MapsOfStringKeys) {
  Service svc;
  svc.entrypoint("scale", {"prices", "factor"},
                 [](std::map<std::string, double> prices, double factor) {
                   for (auto& [k, v] : prices) {
                     v *= factor;
                   }
                   return prices;
                 });
  EXPECT_EQ(svc.handle("POST", "/scale", R"({"prices": {"b": 1, "a": 2.5}, "factor": 2})").body,
            R"({"a":5.0,"b":2.0})");
  EXPECT_EQ(ErrorMessage(svc.handle("POST", "/scale", R"({"prices": {"a": "x"}, "factor": 2})")),
            "argument 'prices.a': expected number, got string");
}

TEST_F(ServiceTest, JsonValuesPassThrough) {
  Service svc;
  svc.entrypoint("echo", {"v"}, [](boost::json::value v) { return v; });
  svc.entrypoint("keys", {"o"}, [](const boost::json::object& o) {
    boost::json::array keys;
    for (const auto& kv : o) {
      keys.emplace_back(kv.key());
    }
    return keys;
  });
  EXPECT_EQ(svc.handle("POST", "/echo", R"({"v": {"a": [1, 0.25, null, "x\n"]}})").body,
            R"({"a":[1,0.25,null,"x\n"]})");
  EXPECT_EQ(svc.handle("POST", "/keys", R"({"o": {"x": 1, "y": 2}})").body, R"(["x","y"])");
  EXPECT_EQ(ErrorMessage(svc.handle("POST", "/keys", R"({"o": []})")),
            "argument 'o': expected object, got array");
}

TEST_F(ServiceTest, UserStructsGoThroughTagInvoke) {
  Service svc;
  svc.entrypoint("mirror", {"p"}, [](geo::Point p) { return geo::Point{-p.x, -p.y}; });
  svc.entrypoint("shout", {"t"}, [](geo::Tag t) { return geo::Tag{ToUpper(t.label)}; });
  EXPECT_EQ(svc.handle("POST", "/mirror", R"({"p": {"x": 1, "y": -2.5}})").body,
            R"({"x":-1.0,"y":2.5})");
  EXPECT_EQ(svc.handle("POST", "/shout", R"({"t": {"label": "hi"}})").body, R"({"label":"HI"})");
  Response bad = svc.handle("POST", "/mirror", R"({"p": {"x": 1}})");
  EXPECT_EQ(bad.status, 422);
  EXPECT_TRUE(ErrorMessage(bad).starts_with("argument 'p': ")) << ErrorMessage(bad);
}

std::string Reverse(std::string_view s) { return std::string(s.rbegin(), s.rend()); }
void Nothing() {}

TEST_F(ServiceTest, FunctionPointersStdFunctionsViewsAndVoid) {
  Service svc;
  int calls = 0;
  svc.entrypoint("reverse", {"s"}, &Reverse);
  svc.entrypoint("nothing", &Nothing);
  svc.entrypoint("count", std::function<int()>([&calls] { return ++calls; }));
  svc.entrypoint("length", {"s"}, [](const std::string& s) { return s.size(); });
  EXPECT_EQ(svc.handle("POST", "/reverse", R"({"s": "abc"})").body, R"("cba")");
  EXPECT_EQ(svc.handle("POST", "/nothing", "").body, "null");
  EXPECT_EQ(svc.handle("POST", "/count", "{}").body, "1");
  EXPECT_EQ(svc.handle("POST", "/count", "  ").body, "2");
  EXPECT_EQ(svc.handle("POST", "/length", R"({"s": "héllo"})").body, "6");
}

TEST_F(ServiceTest, AnExceptionBecomesA500WithItsMessage) {
  Service svc;
  svc.entrypoint("fail", {"why"}, [](std::string why) -> int { throw std::runtime_error(why); });
  Response r = svc.handle("POST", "/fail", R"({"why": "disk \"full\""})");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(ErrorCode(r), "internal");
  EXPECT_EQ(ErrorMessage(r), "entrypoint 'fail' raised std::runtime_error: disk \"full\"");
}

TEST_F(ServiceTest, UnknownPathsListTheEntrypoints) {
  Service svc;
  svc.entrypoint("hello", {"name"}, [](std::string name) { return name; });
  svc.entrypoint("bye", {"name"}, [](std::string name) { return name; });
  Response r = svc.handle("POST", "/helo", "{}");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
  EXPECT_NE(ErrorMessage(r).find("POST /bye, POST /hello"), std::string::npos) << r.body;
}

TEST_F(ServiceTest, WrongMethodsAre405WithAllow) {
  Service svc;
  svc.add_parameter("p", 1);
  svc.entrypoint("hello", {"name"}, [](std::string name) { return name; });
  Response get = svc.handle("GET", "/hello", "");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(Header(get, "Allow"), "POST");
  EXPECT_EQ(Header(svc.handle("POST", "/~health", ""), "Allow"), "GET, HEAD");
  EXPECT_EQ(Header(svc.handle("DELETE", "/~parameters/p", ""), "Allow"), "GET, POST, HEAD");
  EXPECT_EQ(Header(svc.handle("PUT", "/openapi.json", ""), "Allow"), "GET, HEAD");
  EXPECT_EQ(ErrorMessage(get), "GET is not allowed on /hello; use POST");
}

TEST_F(ServiceTest, RequestsArriveWithOrWithoutTheContextRoot) {
  env_.Set("CONTEXT_ROOT", "/default-hello");
  Service svc;
  svc.entrypoint("hello", {"name"}, [](std::string name) { return "Hi " + name; });
  EXPECT_EQ(svc.handle("POST", "/default-hello/hello", R"({"name": "A"})").body, R"("Hi A")");
  EXPECT_EQ(svc.handle("POST", "/hello?trace=1", R"({"name": "B"})").body, R"("Hi B")");
  EXPECT_EQ(svc.handle("GET", "/default-hello/~health", "").status, 200);
  EXPECT_EQ(svc.handle("POST", "/default-hellohello", "{}").status, 404);
  EXPECT_EQ(svc.handle("POST", "/default-hello/hello/", R"({"name": "C"})").body, R"("Hi C")");
  EXPECT_EQ(svc.handle("POST", "/default%2Dhello/%68ello", R"({"name": "D"})").body, R"("Hi D")");
}

TEST_F(ServiceTest, TheRootListsWhatIsServed) {
  env_.Set("CONTEXT_ROOT", "/default-hello/");
  env_.Set("BERTH_SERVICE", "hello");
  Service svc;
  svc.entrypoint("hello", {"name"}, [](std::string name) { return name; });
  Response r = svc.handle("GET", "/default-hello/", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Json(r.body), Json(R"({"service": "hello", "version": "0",
      "entrypoints": ["POST /default-hello/hello"], "docs": "/default-hello/docs",
      "openapi": "/default-hello/openapi.json"})"));
}

TEST_F(ServiceTest, Health) {
  Service svc;
  Response r = svc.handle("GET", "/~health", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"status":"ok"})");
}

TEST_F(ServiceTest, InvalidDeclarationsFailAtStartup) {
  {
    Service svc;
    svc.entrypoint("hello", {"name"}, [](std::string name) { return name; });
    svc.entrypoint("hello", {"name"}, [](std::string name) { return name; });
    EXPECT_EQ(svc.run(), 1);
  }
  {
    Service svc;
    svc.entrypoint("a/b", [] { return 1; });
    EXPECT_EQ(svc.run(), 1);
  }
  {
    Service svc;
    svc.entrypoint("pair", {"x", "x"}, [](int a, int b) { return a + b; });
    EXPECT_EQ(svc.run(), 1);
  }
  {
    Service svc;
    svc.add_parameter("p", 1);
    svc.add_parameter("p", 2);
    EXPECT_EQ(svc.run(), 1);
  }
  {
    Service svc;
    svc.add_parameter("nothing", boost::json::value(nullptr));
    EXPECT_EQ(svc.run(), 1);
  }
  {
    env_.Set("BERTH_SDK_THREADS", "many");
    Service svc;
    EXPECT_EQ(svc.run(), 1);
  }
}

// --- parameters ---

TEST_F(ServiceTest, ParametersListWithValueTypeAndDefault) {
  Service svc;
  svc.add_parameter("greeting_phrase", std::string("Hello"));
  svc.add_parameter("shout", false);
  svc.add_parameter("repeat", 2);
  svc.add_parameter("ratio", 0.5);
  svc.add_parameter("names", boost::json::value(boost::json::array{"a"}));
  svc.add_parameter("limits", boost::json::value(boost::json::object{{"max", 3}}));
  Response r = svc.handle("GET", "/~parameters", "");
  EXPECT_EQ(r.status, 200);
  boost::json::value all = Json(r.body).at("parameters");
  EXPECT_EQ(all.at("greeting_phrase"),
            Json(R"({"value": "Hello", "type": "string", "default": "Hello"})"));
  EXPECT_EQ(all.at("shout").at("type"), "boolean");
  EXPECT_EQ(all.at("repeat").at("type"), "integer");
  EXPECT_EQ(all.at("ratio").at("type"), "number");
  EXPECT_EQ(all.at("names").at("type"), "array");
  EXPECT_EQ(all.at("limits").at("type"), "object");
}

TEST_F(ServiceTest, ParameterReadAndChangedOverHttp) {
  Service svc;
  svc.add_parameter("greeting_phrase", "Hello");
  EXPECT_EQ(Json(svc.handle("GET", "/~parameters/greeting_phrase", "").body),
            Json(R"({"name": "greeting_phrase", "value": "Hello", "type": "string"})"));
  Response set = svc.handle("POST", "/~parameters/greeting_phrase", R"({"value": "Bonjour"})");
  EXPECT_EQ(set.status, 200);
  EXPECT_EQ(Json(set.body), Json(R"({"name": "greeting_phrase", "value": "Bonjour"})"));
  EXPECT_EQ(svc.get_parameter<std::string>("greeting_phrase"), "Bonjour");
  // The tutorial's form: the parameter's name as the key.
  svc.handle("POST", "/~parameters/greeting_phrase", R"({"greeting_phrase": "Hallo"})");
  EXPECT_EQ(svc.get_parameter<std::string>("greeting_phrase"), "Hallo");
  Json(svc.handle("GET", "/~parameters", "").body);
  EXPECT_EQ(Json(svc.handle("GET", "/~parameters", "").body)
                .at("parameters")
                .at("greeting_phrase")
                .at("default"),
            "Hello");
}

TEST_F(ServiceTest, ParameterErrors) {
  Service svc;
  svc.add_parameter("repeat", 2);
  Response unknown = svc.handle("GET", "/~parameters/nope", "");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(ErrorMessage(unknown), "unknown parameter 'nope'; defined parameters: repeat");
  EXPECT_EQ(svc.handle("POST", "/~parameters/nope", R"({"value": 1})").status, 404);
  Response wrong = svc.handle("POST", "/~parameters/repeat", R"({"value": "3"})");
  EXPECT_EQ(wrong.status, 422);
  EXPECT_EQ(ErrorMessage(wrong), "parameter 'repeat': expected integer, got string");
  EXPECT_EQ(svc.handle("POST", "/~parameters/repeat", R"({"value": 2.5})").status, 422);
  EXPECT_EQ(svc.handle("POST", "/~parameters/repeat", R"({"other": 2})").status, 422);
  EXPECT_EQ(svc.handle("POST", "/~parameters/repeat", R"({"value": 2, "repeat": 3})").status, 422);
  EXPECT_EQ(svc.handle("POST", "/~parameters/repeat", "{").status, 400);
  EXPECT_EQ(svc.handle("POST", "/~parameters/repeat", "").status, 400);
  EXPECT_EQ(svc.get_parameter<int>("repeat"), 2);
}

TEST_F(ServiceTest, NumberParametersAcceptIntegers) {
  Service svc;
  svc.add_parameter("ratio", 0.5);
  Response r = svc.handle("POST", "/~parameters/ratio", R"({"value": 2})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"name":"ratio","value":2.0})");
  EXPECT_DOUBLE_EQ(svc.get_parameter<double>("ratio"), 2.0);
}

TEST_F(ServiceTest, ParametersFromCode) {
  Service svc;
  svc.add_parameter("n", std::int64_t{5});
  svc.add_parameter("on", true);
  svc.add_parameter("cfg", boost::json::value(boost::json::object{{"k", "v"}}));
  EXPECT_EQ(svc.get_parameter<std::int64_t>("n"), 5);
  EXPECT_DOUBLE_EQ(svc.get_parameter<double>("n"), 5.0);
  EXPECT_EQ(svc.get_parameter<boost::json::value>("cfg").at("k"), "v");
  EXPECT_EQ((svc.get_parameter<std::map<std::string, std::string>>("cfg").at("k")), "v");
  svc.set_parameter("n", 7);
  svc.set_parameter("on", false);
  svc.set_parameter("cfg", boost::json::object{{"k", "w"}});
  EXPECT_EQ(svc.get_parameter<int>("n"), 7);
  EXPECT_FALSE(svc.get_parameter<bool>("on"));
  EXPECT_EQ(svc.get_parameter<boost::json::object>("cfg").at("k"), "w");
  EXPECT_THROW(svc.get_parameter<int>("missing"), std::out_of_range);
  EXPECT_THROW(svc.get_parameter<std::string>("n"), std::invalid_argument);
  EXPECT_THROW(svc.set_parameter("n", "seven"), std::invalid_argument);
  EXPECT_THROW(svc.set_parameter("missing", 1), std::out_of_range);
}

TEST_F(ServiceTest, ParameterMisuseInsideAnEntrypointIsA500) {
  Service svc;
  svc.add_parameter("n", 1);
  svc.entrypoint("get", [&] { return svc.get_parameter<std::string>("n"); });
  Response r = svc.handle("POST", "/get", "");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(ErrorMessage(r).find("parameter 'n'"), std::string::npos) << r.body;
}

TEST_F(ServiceTest, StoredParametersReplaceDefaultsWhenTheirTypeFits) {
  env_.Set("BERTH_PARAMETERS", R"({"greeting_phrase": "Bonjour", "repeat": "many", "gone": 1})");
  Service svc;
  svc.add_parameter("greeting_phrase", "Hello");
  svc.add_parameter("repeat", 2);
  EXPECT_EQ(svc.get_parameter<std::string>("greeting_phrase"), "Bonjour");
  EXPECT_EQ(svc.get_parameter<int>("repeat"), 2);  // a string does not fit: the default stays
  boost::json::value listed = Json(svc.handle("GET", "/~parameters", "").body);
  EXPECT_EQ(listed.at("parameters").at("greeting_phrase").at("default"), "Hello");
}

TEST_F(ServiceTest, MalformedStoredParametersAreIgnored) {
  env_.Set("BERTH_PARAMETERS", "{not json");
  Service svc;
  svc.add_parameter("greeting_phrase", "Hello");
  EXPECT_EQ(svc.get_parameter<std::string>("greeting_phrase"), "Hello");
}

TEST_F(ServiceTest, ParametersAreSafeToShareBetweenThreads) {
  Service svc;
  svc.add_parameter("word", "a");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&svc, t] {
      for (int i = 0; i < 2000; ++i) {
        if (t == 0) {
          svc.set_parameter("word", i % 2 == 0 ? std::string("bb") : std::string("ccc"));
        } else {
          std::string w = svc.get_parameter<std::string>("word");
          ASSERT_TRUE(w == "a" || w == "bb" || w == "ccc") << w;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
}

// --- the OpenAPI document and the docs page ---

TEST_F(ServiceTest, OpenApiDescribesEntrypointsFromTheirTypes) {
  env_.Set("CONTEXT_ROOT", "/default-hello");
  env_.Set("BERTH_SERVICE", "hello");
  env_.Set("BERTH_VERSION", "3");
  Service svc;
  svc.add_parameter("greeting_phrase", "Hello");
  svc.entrypoint(
      "hello", {"name", "title", "tags"},
      [](std::string name, std::optional<std::string>, std::vector<int>) { return name; });
  svc.entrypoint("mirror", {"p", "t"}, [](geo::Point p, geo::Tag) { return p; });
  Response r = svc.handle("GET", "/openapi.json", "");
  ASSERT_EQ(r.status, 200);
  boost::json::value doc = Json(r.body);
  EXPECT_EQ(doc.at("openapi"), "3.1.0");
  EXPECT_EQ(doc.at("info"), Json(R"({"title": "hello", "version": "3"})"));
  EXPECT_EQ(doc.at("servers"), Json(R"([{"url": "/default-hello"}])"));

  const auto& hello = doc.at("paths").at("/hello").at("post");
  const auto& body = hello.at("requestBody").at("content").at("application/json").at("schema");
  EXPECT_EQ(body.at("properties"), Json(R"({
      "name": {"type": "string"},
      "title": {"type": ["string", "null"]},
      "tags": {"type": "array", "items": {"type": "integer"}}})"));
  EXPECT_EQ(body.at("required"), Json(R"(["name", "tags"])"));
  EXPECT_EQ(hello.at("requestBody").at("required"), true);
  EXPECT_EQ(hello.at("responses").at("200").at("content").at("application/json").at("schema"),
            Json(R"({"type": "string"})"));
  EXPECT_TRUE(hello.at("responses").as_object().contains("422"));

  const auto& mirror = doc.at("paths").at("/mirror").at("post");
  const auto& props =
      mirror.at("requestBody").at("content").at("application/json").at("schema").at("properties");
  EXPECT_EQ(props.at("p").at("required"), Json(R"(["x", "y"])"));  // the struct's own schema
  EXPECT_EQ(props.at("t"), Json(R"({"type": "object"})"));         // the fallback

  const auto& parameter = doc.at("paths").at("/~parameters/greeting_phrase");
  EXPECT_TRUE(parameter.as_object().contains("get"));
  EXPECT_TRUE(parameter.as_object().contains("post"));
  EXPECT_TRUE(doc.at("paths").as_object().contains("/~parameters"));
  EXPECT_TRUE(doc.at("paths").as_object().contains("/~health"));
}

TEST_F(ServiceTest, OpenApiDefaultsWithoutThePlatform) {
  Service svc;
  boost::json::value doc = Json(svc.handle("GET", "/openapi.json", "").body);
  EXPECT_EQ(doc.at("info"), Json(R"({"title": "service", "version": "0"})"));
  EXPECT_EQ(doc.at("servers"), Json(R"([{"url": "/"}])"));
}

TEST_F(ServiceTest, SchemaOfStandardTypes) {
  EXPECT_EQ(SchemaOf<bool>(), Json(R"({"type": "boolean"})").as_object());
  EXPECT_EQ(SchemaOf<double>(), Json(R"({"type": "number"})").as_object());
  EXPECT_EQ((SchemaOf<std::map<std::string, std::vector<double>>>()),
            Json(R"({"type": "object", "additionalProperties":
                      {"type": "array", "items": {"type": "number"}}})")
                .as_object());
  EXPECT_EQ(SchemaOf<boost::json::value>(), boost::json::object{});
  EXPECT_EQ(SchemaOf<boost::json::array>(), Json(R"({"type": "array"})").as_object());
  EXPECT_EQ(SchemaOf<void>(), Json(R"({"type": "null"})").as_object());
  EXPECT_EQ(SchemaOf<std::optional<std::vector<int>>>(),
            Json(R"({"type": ["array", "null"], "items": {"type": "integer"}})").as_object());
  EXPECT_EQ(SchemaOf<std::optional<boost::json::value>>(), boost::json::object{});
}

TEST_F(ServiceTest, DocsPageIsSelfContained) {
  Service svc;
  Response r = svc.handle("GET", "/docs", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("fetch(\"openapi.json\")"), std::string::npos);
  EXPECT_NE(r.body.find("~parameters"), std::string::npos);
  EXPECT_EQ(r.body.find("http://"), std::string::npos);
  EXPECT_EQ(r.body.find("https://"), std::string::npos);
  EXPECT_EQ(r.body.find("<script src"), std::string::npos);
  EXPECT_EQ(r.body.find("<link"), std::string::npos);
}

}  // namespace
}  // namespace berth
