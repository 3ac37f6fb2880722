#include "pipeline/cron.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

#include "common/file_util.h"

namespace berth {

// A zone as UTC offsets over time: explicit transitions, then the footer's yearly rule.
struct PosixDate {
  enum class Kind { kJulian, kZeroBased, kMonthWeekDay };  // Jn, n, Mm.w.d
  Kind kind = Kind::kMonthWeekDay;
  int n = 0;  // kJulian: 1-365 (29 February never counted); kZeroBased: 0-365
  int month = 0, week = 0, weekday = 0;  // kMonthWeekDay; week 5: the last
};

struct PosixRule {
  int32_t std_offset = 0;  // seconds east of UTC (POSIX writes west as positive)
  bool has_dst = false;
  int32_t dst_offset = 0;
  PosixDate start, end;  // DST begins at `start` local standard time, ends at `end` local DST
  int32_t start_time = 7200, end_time = 7200;  // seconds after local midnight; may be < 0 or > 24h
};

struct CronZone {
  std::vector<int64_t> transitions;  // ascending; only those that change the offset
  std::vector<int32_t> offsets;      // offsets[i] applies from transitions[i]
  int32_t initial_offset = 0;        // before the first transition (time type 0)
  std::optional<PosixRule> rule;     // after the last transition (or always, if none)
};

bool operator==(const CronSchedule& a, const CronSchedule& b) {
  return a.minutes == b.minutes && a.hours == b.hours && a.days_of_month == b.days_of_month &&
         a.months == b.months && a.days_of_week == b.days_of_week &&
         a.any_day_of_month == b.any_day_of_month && a.any_day_of_week == b.any_day_of_week &&
         a.time_zone == b.time_zone;
}

namespace {

constexpr std::string_view kZoneDir = "/usr/share/zoneinfo";
constexpr int64_t kDay = 86400;
// Years 1 to 9999; kFar stands for the open ends of the first and last zone segments.
constexpr int64_t kMinTime = -62135596800;  // 0001-01-01T00:00:00Z
constexpr int64_t kMaxTime = 253402300799;  // 9999-12-31T23:59:59Z
constexpr int64_t kFar = int64_t{1} << 50;
constexpr int64_t kHorizon = 9 * 366 * kDay;
// TZif offsets are within -89999..93599 (RFC 8536), so t + offset(t) >= L implies t >= L - this.
constexpr int64_t kMaxOffset = 93600;

// ---- Calendar (proleptic Gregorian, days since 1970-01-01; H. Hinnant's algorithms) ----

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct Civil {
  int64_t year;
  unsigned month, day;
};

Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

int Weekday(int64_t days) {  // 0 = Sunday; 1970-01-01 was a Thursday
  return static_cast<int>(days >= -4 ? (days + 4) % 7 : (days + 5) % 7 + 6);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30,
                                                     31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// ---- Zones ----

struct Segment {
  int64_t start, end;  // [start, end): one offset throughout
  int32_t offset;
};

int64_t RuleDay(int64_t year, const PosixDate& d) {
  const int64_t jan1 = DaysFromCivil(year, 1, 1);
  switch (d.kind) {
    case PosixDate::Kind::kJulian:
      return jan1 + d.n - 1 + (IsLeap(year) && d.n >= 60 ? 1 : 0);
    case PosixDate::Kind::kZeroBased:
      return jan1 + d.n;
    case PosixDate::Kind::kMonthWeekDay:
      break;
  }
  const auto month = static_cast<unsigned>(d.month);
  const int64_t first = DaysFromCivil(year, month, 1);
  int64_t day = (d.weekday - Weekday(first) + 7) % 7 + 7 * (d.week - 1);
  while (day >= DaysInMonth(year, month)) {
    day -= 7;
  }
  return first + day;
}

Segment RuleSegment(const PosixRule& r, int64_t t) {
  if (!r.has_dst) {
    return {-kFar, kFar, r.std_offset};
  }
  // Rule times may stray up to a week from their date, so neighbouring years' changes count.
  const int64_t year = CivilFromDays(FloorDiv(t + r.std_offset, kDay)).year;
  struct Change {
    int64_t at;
    int32_t offset;
  };
  std::array<Change, 10> changes;
  size_t n = 0;
  for (int64_t y = year - 2; y <= year + 2; ++y) {
    changes[n++] = {RuleDay(y, r.start) * kDay + r.start_time - r.std_offset, r.dst_offset};
    changes[n++] = {RuleDay(y, r.end) * kDay + r.end_time - r.dst_offset, r.std_offset};
  }
  // Stable: at equal instants the later year's change wins (DST all year: "EST5EDT4,0/0,J365/25").
  std::stable_sort(changes.begin(), changes.end(),
                   [](const Change& a, const Change& b) { return a.at < b.at; });
  Segment seg{-kFar, kFar, r.std_offset};
  for (const Change& c : changes) {
    if (c.at <= t) {
      seg.start = c.at;
      seg.offset = c.offset;
    } else {
      seg.end = c.at;
      break;
    }
  }
  return seg;
}

Segment ZoneSegment(const CronZone* z, int64_t t) {
  if (z == nullptr) {
    return {-kFar, kFar, 0};
  }
  const std::vector<int64_t>& tr = z->transitions;
  if (tr.empty()) {
    return z->rule ? RuleSegment(*z->rule, t) : Segment{-kFar, kFar, z->initial_offset};
  }
  auto next = std::upper_bound(tr.begin(), tr.end(), t);
  if (next == tr.begin()) {
    return {-kFar, tr.front(), z->initial_offset};
  }
  const auto i = static_cast<size_t>(next - tr.begin() - 1);
  if (next != tr.end()) {
    return {tr[i], *next, z->offsets[i]};
  }
  if (!z->rule) {
    return {tr[i], kFar, z->offsets[i]};
  }
  // The footer governs only after the last transition.
  Segment seg = RuleSegment(*z->rule, t);
  if (seg.start <= tr[i]) {
    return {tr[i], seg.end, z->offsets[i]};
  }
  return seg;
}

int64_t LocalTime(const CronZone* z, int64_t t) { return t + ZoneSegment(z, t).offset; }

// The earliest instant whose wall-clock time is `local` or later: the time itself, its first
// occurrence when the clock falls back over it, the end of the gap when it springs over it.
// Non-decreasing in `local`.
int64_t FirstInstantAtOrAfter(const CronZone* z, int64_t local) {
  Segment seg = ZoneSegment(z, local - kMaxOffset);
  for (;;) {
    const int64_t t = std::max(seg.start, local - seg.offset);
    if (t < seg.end) {
      return t;
    }
    seg = ZoneSegment(z, seg.end);
  }
}

// Reads [+-]hh[:mm[:ss]] at `s[*pos]`, hours up to `max_hours`; seconds.
std::optional<int32_t> ParsePosixDuration(std::string_view s, size_t* pos, int max_hours) {
  int sign = 1;
  if (*pos < s.size() && (s[*pos] == '+' || s[*pos] == '-')) {
    sign = s[*pos] == '-' ? -1 : 1;
    ++*pos;
  }
  int32_t total = 0;
  for (int part = 0; part < 3; ++part) {
    if (part > 0) {
      if (*pos >= s.size() || s[*pos] != ':') {
        break;
      }
      ++*pos;
    }
    int v = 0;
    const char* begin = s.data() + *pos;
    auto [end, ec] = std::from_chars(begin, s.data() + s.size(), v);
    if (ec != std::errc() || end == begin || end - begin > 3 || v < 0 ||
        v > (part == 0 ? max_hours : 59)) {
      return std::nullopt;
    }
    *pos += static_cast<size_t>(end - begin);
    total += v * (part == 0 ? 3600 : part == 1 ? 60 : 1);
  }
  return sign * total;
}

bool ParsePosixName(std::string_view s, size_t* pos) {
  const size_t begin = *pos;
  if (*pos < s.size() && s[*pos] == '<') {
    const size_t close = s.find('>', *pos);
    if (close == std::string_view::npos || close == *pos + 1) {
      return false;
    }
    *pos = close + 1;
    return true;
  }
  while (*pos < s.size() && ((s[*pos] >= 'A' && s[*pos] <= 'Z') ||
                             (s[*pos] >= 'a' && s[*pos] <= 'z'))) {
    ++*pos;
  }
  return *pos - begin >= 3;
}

std::optional<int> ParsePosixInt(std::string_view s, size_t* pos, int min, int max) {
  int v = 0;
  const char* begin = s.data() + *pos;
  auto [end, ec] = std::from_chars(begin, s.data() + s.size(), v);
  if (ec != std::errc() || end == begin || v < min || v > max) {
    return std::nullopt;
  }
  *pos += static_cast<size_t>(end - begin);
  return v;
}

bool ParsePosixDate(std::string_view s, size_t* pos, PosixDate* d, int32_t* time) {
  if (*pos < s.size() && s[*pos] == 'J') {
    ++*pos;
    d->kind = PosixDate::Kind::kJulian;
    auto n = ParsePosixInt(s, pos, 1, 365);
    if (!n) {
      return false;
    }
    d->n = *n;
  } else if (*pos < s.size() && s[*pos] == 'M') {
    ++*pos;
    d->kind = PosixDate::Kind::kMonthWeekDay;
    auto m = ParsePosixInt(s, pos, 1, 12);
    if (!m || *pos >= s.size() || s[(*pos)++] != '.') {
      return false;
    }
    auto w = ParsePosixInt(s, pos, 1, 5);
    if (!w || *pos >= s.size() || s[(*pos)++] != '.') {
      return false;
    }
    auto wd = ParsePosixInt(s, pos, 0, 6);
    if (!wd) {
      return false;
    }
    d->month = *m;
    d->week = *w;
    d->weekday = *wd;
  } else {
    d->kind = PosixDate::Kind::kZeroBased;
    auto n = ParsePosixInt(s, pos, 0, 365);
    if (!n) {
      return false;
    }
    d->n = *n;
  }
  if (*pos < s.size() && s[*pos] == '/') {
    ++*pos;
    auto t = ParsePosixDuration(s, pos, 167);  // TZif v3 allows -167..167 hours
    if (!t) {
      return false;
    }
    *time = *t;
  }
  return true;
}

// "CET-1CEST,M3.5.0,M10.5.0/3", "<+0330>-3:30", "EST5EDT,M3.2.0,M11.1.0".
std::optional<PosixRule> ParsePosixRule(std::string_view s) {
  PosixRule r;
  size_t pos = 0;
  if (!ParsePosixName(s, &pos)) {
    return std::nullopt;
  }
  auto std_off = ParsePosixDuration(s, &pos, 24);
  if (!std_off) {
    return std::nullopt;
  }
  r.std_offset = -*std_off;
  if (pos == s.size()) {
    return r;
  }
  if (!ParsePosixName(s, &pos)) {
    return std::nullopt;
  }
  r.has_dst = true;
  r.dst_offset = r.std_offset + 3600;
  if (pos < s.size() && s[pos] != ',') {
    auto dst_off = ParsePosixDuration(s, &pos, 24);
    if (!dst_off) {
      return std::nullopt;
    }
    r.dst_offset = -*dst_off;
  }
  // Without a rule POSIX leaves the dates to the implementation; tzdata always writes them.
  if (pos >= s.size() || s[pos++] != ',' || !ParsePosixDate(s, &pos, &r.start, &r.start_time) ||
      pos >= s.size() || s[pos++] != ',' || !ParsePosixDate(s, &pos, &r.end, &r.end_time) ||
      pos != s.size()) {
    return std::nullopt;
  }
  return r;
}

// Bounds-checked big-endian reads over a TZif file.
class TzifReader {
 public:
  explicit TzifReader(std::string_view data) : data_(data) {}
  bool Has(size_t n) const { return n <= data_.size() - pos_; }
  void Skip(size_t n) { pos_ += n; }
  uint8_t U8() { return static_cast<uint8_t>(data_[pos_++]); }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      v = v << 8 | U8();
    }
    return v;
  }
  int64_t S64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
      v = v << 8 | U8();
    }
    return static_cast<int64_t>(v);
  }
  int64_t Time(size_t size) {
    return size == 8 ? S64() : static_cast<int64_t>(static_cast<int32_t>(U32()));
  }
  std::string_view Rest() const { return data_.substr(pos_); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

struct TzifCounts {
  uint32_t isut, isstd, leap, time, type, chars;
  size_t BlockSize(size_t time_size) const {
    return size_t{time} * (time_size + 1) + size_t{type} * 6 + chars +
           size_t{leap} * (time_size + 4) + isstd + isut;
  }
};

bool ReadTzifHeader(TzifReader* r, char* version, TzifCounts* c) {
  if (!r->Has(44) || r->Rest().substr(0, 4) != "TZif") {
    return false;
  }
  r->Skip(4);
  *version = static_cast<char>(r->U8());
  r->Skip(15);
  *c = {r->U32(), r->U32(), r->U32(), r->U32(), r->U32(), r->U32()};
  return true;
}

// RFC 8536. Returns the reason when the file is not a usable TZif file.
Result<CronZone> ParseTzif(std::string_view data) {
  auto bad = [](std::string_view why) { return Status::InvalidArgument(std::string(why)); };
  TzifReader r(data);
  char version = 0;
  TzifCounts c{};
  if (!ReadTzifHeader(&r, &version, &c)) {
    return bad("not a TZif file");
  }
  size_t time_size = 4;
  if (version != 0) {  // v2+: skip the 32-bit block for the 64-bit one
    if (!r.Has(c.BlockSize(4))) {
      return bad("truncated");
    }
    r.Skip(c.BlockSize(4));
    if (!ReadTzifHeader(&r, &version, &c)) {
      return bad("no second header");
    }
    time_size = 8;
  }
  if (c.leap != 0) {
    return bad("leap-second zones ('right/') are not supported");
  }
  if (c.type == 0 || !r.Has(c.BlockSize(time_size))) {
    return bad("truncated or without local time types");
  }
  std::vector<int64_t> times(c.time);
  for (int64_t& t : times) {
    t = r.Time(time_size);
  }
  std::vector<uint8_t> type_of(c.time);
  for (uint8_t& i : type_of) {
    i = r.U8();
  }
  std::vector<int32_t> type_offsets(c.type);
  for (int32_t& off : type_offsets) {
    off = static_cast<int32_t>(r.U32());
    r.Skip(2);  // isdst, abbreviation index: not needed
    if (off < -89999 || off > 93599) {
      return bad("a UTC offset out of range");
    }
  }
  r.Skip(c.BlockSize(time_size) - size_t{c.time} * (time_size + 1) - size_t{c.type} * 6);
  CronZone z;
  z.initial_offset = type_offsets[0];
  int32_t current = z.initial_offset;
  for (size_t i = 0; i < times.size(); ++i) {
    if (type_of[i] >= c.type || (i > 0 && times[i] <= times[i - 1])) {
      return bad("bad transitions");
    }
    const int32_t off = type_offsets[type_of[i]];
    if (off != current) {  // changes of name or isdst alone do not move the clock
      z.transitions.push_back(times[i]);
      z.offsets.push_back(off);
      current = off;
    }
  }
  if (time_size == 8 && r.Has(1) && r.Rest()[0] == '\n') {
    std::string_view rest = r.Rest().substr(1);
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      return bad("unterminated TZ string footer");
    }
    std::string_view footer = rest.substr(0, nl);
    if (!footer.empty()) {
      z.rule = ParsePosixRule(footer);
      if (!z.rule) {
        return bad(fmt::format("unsupported TZ string footer '{}'", footer));
      }
    }
  }
  return z;
}

bool ValidZoneName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name.back() == '/') {
    return false;
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) {
      slash = name.size();
    }
    std::string_view part = name.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") {
      return false;
    }
    for (char ch : part) {
      const bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '+' || ch == '.';
      if (!ok) {
        return false;
      }
    }
    start = slash + 1;
  }
  return true;
}

// One bad value cannot flood a message.
std::string Cut(std::string_view s) {
  constexpr size_t kMax = 60;
  return s.size() > kMax ? fmt::format("{}...", s.substr(0, kMax)) : std::string(s);
}

Result<std::shared_ptr<const CronZone>> LoadZone(std::string_view name) {
  const std::string unknown =
      fmt::format("unknown time zone '{}' (see {})", Cut(name), kZoneDir);
  if (!ValidZoneName(name)) {
    return Status::InvalidArgument(unknown);
  }
  const std::string path = fmt::format("{}/{}", kZoneDir, name);
  Result<std::string> data = ReadFile(path);
  if (!data.ok() || data->substr(0, 4) != "TZif") {  // absent, a directory, zone.tab, ...
    return Status::InvalidArgument(unknown);
  }
  Result<CronZone> zone = ParseTzif(*data);
  if (!zone.ok()) {
    return Status::InvalidArgument(
        fmt::format("time zone '{}': {}: {}", name, path, zone.status().message()));
  }
  return std::shared_ptr<const CronZone>(std::make_shared<CronZone>(std::move(*zone)));
}

// ---- Expressions ----

constexpr std::array<std::string_view, 12> kMonthNames = {
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kDayNames = {"sun", "mon", "tue", "wed",
                                                       "thu", "fri", "sat"};

struct FieldSpec {
  int number;             // 1-5, as in messages
  std::string_view name;  // "hour"
  int min, max;           // values that may be written (day of week: 0-7)
  int last;               // the end of `*` and of `a/n` (day of week: 6, as 7 is 0 again)
  std::string_view range_message;
  const std::string_view* names;  // jan..dec or sun..sat; null: numbers only
  int first_name_value;           // the value of names[0]
  size_t name_count;
  std::string_view not_a_value;
};

constexpr std::array<FieldSpec, 5> kFields = {{
    {1, "minute", 0, 59, 59, "minutes are 0-59", nullptr, 0, 0, "not a number"},
    {2, "hour", 0, 23, 23, "hours are 0-23", nullptr, 0, 0, "not a number"},
    {3, "day-of-month", 1, 31, 31, "days of month are 1-31", nullptr, 0, 0, "not a number"},
    {4, "month", 1, 12, 12, "months are 1-12 (or jan-dec)", kMonthNames.data(), 1, 12,
     "not a number or a month name (jan-dec)"},
    {5, "day-of-week", 0, 7, 6, "days of week are 0-7 (or sun-sat; 0 and 7 are Sunday)",
     kDayNames.data(), 0, 7, "not a number or a day name (sun-sat)"},
}};

constexpr std::string_view kFieldList = "minute hour day-of-month month day-of-week";

Status FieldError(const FieldSpec& f, std::string_view part, std::string_view what) {
  return Status::InvalidArgument(
      fmt::format("cron field {} ({}) '{}': {}", f.number, f.name, Cut(part), what));
}

bool EqualsLower(std::string_view text, std::string_view lower) {
  return text.size() == lower.size() &&
         std::equal(text.begin(), text.end(), lower.begin(), [](char a, char b) {
           return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
         });
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Result<int> ParseValue(const FieldSpec& f, std::string_view token) {
  if (AllDigits(token)) {
    int v = 0;
    auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
    if (ec != std::errc() || end != token.data() + token.size() || v < f.min || v > f.max) {
      return FieldError(f, token, f.range_message);
    }
    return v;
  }
  for (size_t i = 0; i < f.name_count; ++i) {
    if (EqualsLower(token, f.names[i])) {
      return f.first_name_value + static_cast<int>(i);
    }
  }
  return FieldError(f, token, f.not_a_value);
}

struct Field {
  std::bitset<64> values;  // bit v: value v as written (day of week 7 still 7)
  bool any = false;        // `*` or `*/1`
};

Status ParseItem(const FieldSpec& f, std::string_view item, Field* out) {
  auto shape = [&] {
    return FieldError(f, item,
                      "expected *, a value or a range a-b, each optionally with a step /n");
  };
  std::string_view range = item;
  std::optional<int> step;
  if (const size_t slash = item.find('/'); slash != std::string_view::npos) {
    range = item.substr(0, slash);
    std::string_view step_text = item.substr(slash + 1);
    const int span = f.last - f.min + 1;
    const std::string steps = fmt::format("steps are 1-{}", span);
    if (!AllDigits(step_text)) {
      return step_text.empty() ? shape() : FieldError(f, item, steps);
    }
    int v = 0;
    auto [end, ec] = std::from_chars(step_text.data(), step_text.data() + step_text.size(), v);
    if (ec != std::errc() || v < 1 || v > span) {
      return FieldError(f, item, steps);
    }
    step = v;
  }
  int lo = 0, hi = 0;
  if (range == "*") {
    lo = f.min;
    hi = f.last;
    out->any = out->any || step.value_or(1) == 1;
  } else if (const size_t dash = range.find('-'); dash != std::string_view::npos) {
    std::string_view a = range.substr(0, dash), b = range.substr(dash + 1);
    if (a.empty() || b.empty() || a.find('*') != std::string_view::npos ||
        b.find_first_of("*-") != std::string_view::npos) {
      return shape();
    }
    Result<int> av = ParseValue(f, a);
    if (!av.ok()) {
      return av.status();
    }
    Result<int> bv = ParseValue(f, b);
    if (!bv.ok()) {
      return bv.status();
    }
    lo = *av;
    hi = *bv;
    if (f.number == 5 && hi == 0 && lo > 0) {
      hi = 7;  // fri-sun
    }
    if (lo > hi) {
      return FieldError(f, range, "the range's start is after its end");
    }
  } else {
    if (range.empty()) {
      return shape();
    }
    Result<int> v = ParseValue(f, range);
    if (!v.ok()) {
      return v.status();
    }
    lo = *v;
    hi = step ? std::max(lo, f.last) : lo;  // "5/20": 5-59/20
  }
  for (int v = lo; v <= hi; v += step.value_or(1)) {
    out->values.set(static_cast<size_t>(v));
  }
  return Status::Ok();
}

Result<Field> ParseField(const FieldSpec& f, std::string_view text) {
  Field field;
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? text.npos
                                                                                : comma - start);
    if (item.empty()) {
      return FieldError(f, text, "empty list item");
    }
    if (Status s = ParseItem(f, item, &field); !s.ok()) {
      return s;
    }
    if (comma == std::string_view::npos) {
      return field;
    }
    start = comma + 1;
  }
}

template <size_t N, size_t M>
std::bitset<N> Narrow(const std::bitset<M>& bits) {
  std::bitset<N> out;
  for (size_t i = 0; i < N; ++i) {
    out[i] = bits[i];
  }
  return out;
}

struct Macro {
  std::string_view name, fields;
};
constexpr std::array<Macro, 7> kMacros = {{
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
}};

constexpr std::string_view kSpace = " \t\r\n\f\v";

std::vector<std::string_view> SplitFields(std::string_view expr) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while ((pos = expr.find_first_not_of(kSpace, pos)) != std::string_view::npos) {
    const size_t end = expr.find_first_of(kSpace, pos);
    out.push_back(expr.substr(pos, end == std::string_view::npos ? expr.npos : end - pos));
    pos = end;
  }
  return out;
}

Result<CronSchedule> ParseFields(std::string_view expr) {
  std::vector<std::string_view> parts = SplitFields(expr);
  if (!parts.empty() && parts[0].starts_with('@')) {
    if (parts.size() > 1) {
      return Status::InvalidArgument(
          fmt::format("cron macro '{}' takes no fields, got '{}'", Cut(parts[0]), Cut(parts[1])));
    }
    for (const Macro& m : kMacros) {
      if (EqualsLower(parts[0], m.name)) {
        return ParseFields(m.fields);
      }
    }
    if (EqualsLower(parts[0], "@reboot")) {
      return Status::InvalidArgument("cron macro '@reboot' is not supported: schedules are times");
    }
    return Status::InvalidArgument(fmt::format(
        "unknown cron macro '{}' (@yearly @annually @monthly @weekly @daily @midnight @hourly)",
        Cut(parts[0])));
  }
  if (!parts.empty() && (parts[0].starts_with("CRON_TZ=") || parts[0].starts_with("TZ="))) {
    return Status::InvalidArgument(fmt::format(
        "'{}': give the time zone as the schedule's time zone, not in the expression",
        Cut(parts[0])));
  }
  if (parts.size() != 5) {
    return Status::InvalidArgument(
        fmt::format("cron schedules have five fields ({}), got {}", kFieldList, parts.size()));
  }
  std::array<Field, 5> fields;
  for (size_t i = 0; i < 5; ++i) {
    Result<Field> f = ParseField(kFields[i], parts[i]);
    if (!f.ok()) {
      return f.status();
    }
    fields[i] = *f;
  }
  if (fields[4].values[7]) {
    fields[4].values.reset(7);
    fields[4].values.set(0);
  }
  CronSchedule s;
  s.minutes = Narrow<60>(fields[0].values);
  s.hours = Narrow<24>(fields[1].values);
  s.days_of_month = Narrow<32>(fields[2].values);
  s.months = Narrow<13>(fields[3].values);
  s.days_of_week = Narrow<7>(fields[4].values);
  s.any_day_of_month = fields[2].any;
  s.any_day_of_week = fields[4].any;
  return s;
}

template <size_t N>
int NextSet(const std::bitset<N>& bits, int from) {
  for (auto i = static_cast<size_t>(from); i < N; ++i) {
    if (bits[i]) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool DayMatches(const CronSchedule& s, int64_t days, unsigned day_of_month) {
  const bool dom = s.days_of_month[day_of_month];
  const bool dow = s.days_of_week[static_cast<size_t>(Weekday(days))];
  // Standard cron: both restricted, either may match; otherwise the restricted one decides.
  return s.any_day_of_month || s.any_day_of_week ? dom && dow : dom || dow;
}

// The first minute-aligned wall-clock time in [from, limit) (seconds, local time counted like
// unix time) that the fields match.
std::optional<int64_t> NextLocalMatch(const CronSchedule& s, int64_t from, int64_t limit) {
  const int64_t first = -FloorDiv(-from, 60) * 60;
  const int64_t first_day = FloorDiv(first, kDay);
  const Civil c = CivilFromDays(first_day);
  int64_t year = c.year;
  unsigned month = c.month, day = c.day;
  int hour = static_cast<int>((first - first_day * kDay) / 3600);
  int minute = static_cast<int>((first - first_day * kDay) % 3600 / 60);
  auto next_month = [&] {
    day = 1;
    hour = minute = 0;
    if (++month > 12) {
      month = 1;
      ++year;
    }
  };
  auto next_day = [&] {
    hour = minute = 0;
    if (++day > DaysInMonth(year, month)) {
      next_month();
    }
  };
  for (;;) {
    const int64_t days = DaysFromCivil(year, month, day);
    if (days * kDay >= limit) {
      return std::nullopt;
    }
    if (!s.months[month]) {
      next_month();
      continue;
    }
    if (!DayMatches(s, days, day)) {
      next_day();
      continue;
    }
    const int h = NextSet(s.hours, hour);
    if (h < 0) {
      next_day();
      continue;
    }
    if (h != hour) {
      hour = h;
      minute = 0;
    }
    const int m = NextSet(s.minutes, minute);
    if (m < 0) {
      minute = 0;
      if (++hour == 24) {
        next_day();
      }
      continue;
    }
    const int64_t t = days * kDay + hour * 3600 + m * 60;
    return t < limit ? std::optional<int64_t>(t) : std::nullopt;
  }
}

template <size_t N>
std::string RenderField(const std::bitset<N>& bits, int lo, int hi, bool any) {
  if (any) {
    return "*";
  }
  std::vector<int> values;
  for (int v = lo; v <= hi; ++v) {
    if (bits[static_cast<size_t>(v)]) {
      values.push_back(v);
    }
  }
  for (int step = 2; step <= hi - lo && values.size() >= 2; ++step) {
    if (values.size() == static_cast<size_t>((hi - lo) / step + 1) &&
        std::all_of(values.begin(), values.end(), [&](int v) { return (v - lo) % step == 0; }) &&
        values.front() == lo) {
      return fmt::format("*/{}", step);
    }
  }
  std::string out;
  for (size_t i = 0; i < values.size();) {
    size_t j = i;
    while (j + 1 < values.size() && values[j + 1] == values[j] + 1) {
      ++j;
    }
    if (!out.empty()) {
      out += ',';
    }
    if (j - i >= 2) {
      out += fmt::format("{}-{}", values[i], values[j]);
    } else {
      out += fmt::format("{}", values[i]);
      if (j > i) {
        out += fmt::format(",{}", values[j]);
      }
    }
    i = j + 1;
  }
  return out;
}

}  // namespace

Result<CronSchedule> ParseCron(std::string_view expr, std::string_view time_zone) {
  Result<CronSchedule> s = ParseFields(expr);
  if (!s.ok()) {
    return s;
  }
  if (time_zone.empty() || time_zone == "UTC") {
    s->time_zone = "UTC";
    return s;
  }
  Result<std::shared_ptr<const CronZone>> zone = LoadZone(time_zone);
  if (!zone.ok()) {
    return zone.status();
  }
  s->time_zone = std::string(time_zone);
  s->zone = std::move(*zone);
  return s;
}

std::optional<int64_t> NextFire(const CronSchedule& s, int64_t after) {
  if (after >= kMaxTime) {
    return std::nullopt;
  }
  after = std::max(after, kMinTime);
  const CronZone* z = s.zone.get();
  if (s.hours.all()) {
    // An interval: the instants whose wall-clock time matches, segment by segment of the zone.
    const int64_t limit = after + kHorizon;
    for (int64_t t = after + 1; t < limit;) {
      const Segment seg = ZoneSegment(z, t);
      const int64_t end = std::min(seg.end, limit);
      if (auto local = NextLocalMatch(s, t + seg.offset, end + seg.offset)) {
        return *local - seg.offset;
      }
      t = end;
    }
    return std::nullopt;
  }
  // Wall-clock times, each at the first instant that reaches it. As that instant does not
  // decrease with the wall time, the first time whose instant is after `after` is the answer;
  // earlier ones are those already passed in a repeated hour.
  const int64_t local_after = LocalTime(z, after);
  for (int64_t from = local_after + 1;;) {
    std::optional<int64_t> local = NextLocalMatch(s, from, local_after + kHorizon);
    if (!local) {
      return std::nullopt;
    }
    const int64_t t = FirstInstantAtOrAfter(z, *local);
    if (t > after) {
      return t;
    }
    from = *local + 60;
  }
}

std::vector<int64_t> FiresBetween(const CronSchedule& s, int64_t from, int64_t to, size_t limit) {
  std::vector<int64_t> out;
  for (int64_t t = from; out.size() < limit;) {
    std::optional<int64_t> next = NextFire(s, t);
    if (!next || *next > to) {
      break;
    }
    out.push_back(*next);
    t = *next;
  }
  return out;
}

std::string CronToString(const CronSchedule& s) {
  // Every minute, hour or month is `*` whichever way it was written; only the day fields'
  // `*` changes meaning (the day-of-month / day-of-week rule).
  return fmt::format("{} {} {} {} {}", RenderField(s.minutes, 0, 59, s.minutes.all()),
                     RenderField(s.hours, 0, 23, s.hours.all()),
                     RenderField(s.days_of_month, 1, 31, s.any_day_of_month),
                     RenderField(s.months, 1, 12, s.months.count() == 12),
                     RenderField(s.days_of_week, 0, 6, s.any_day_of_week));
}

int32_t CronUtcOffset(const CronSchedule& s, int64_t t) {
  return ZoneSegment(s.zone.get(), std::clamp(t, kMinTime, kMaxTime)).offset;
}

}  // namespace berth
