#include "common/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace berth {
namespace {

TEST(StatusTest, OkHasNoMessage) {
  Status s = Status::Ok();
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(StatusTest, WithContextPrefixesMessageAndKeepsCode) {
  Status s = Status::NotFound("service 'x' does not exist").WithContext("deleting");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "deleting: service 'x' does not exist");
  EXPECT_EQ(s.ToString(), "not_found: deleting: service 'x' does not exist");
}

TEST(StatusTest, ErrnoStatusMapsCommonErrors) {
  EXPECT_EQ(ErrnoStatus("opening f", ENOENT).code(), StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus("opening f", EACCES).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus("opening f", EIO).code(), StatusCode::kInternal);
  EXPECT_EQ(ErrnoStatus("opening f", ENOENT).message(), "opening f: No such file or directory");
}

TEST(StatusTest, CodeNamesReadBackAsTheirCodes) {
  for (int i = 0; i <= static_cast<int>(StatusCode::kInternal); ++i) {
    auto code = static_cast<StatusCode>(i);
    EXPECT_EQ(StatusCodeFromName(StatusCodeName(code)), code) << StatusCodeName(code);
  }
  EXPECT_EQ(StatusCodeFromName("no_such_code"), StatusCode::kInternal);
  EXPECT_EQ(StatusCodeFromName(""), StatusCode::kInternal);
}

TEST(ResultTest, HoldsValueOrStatus) {
  Result<int> good = 42;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 42);
  Result<int> bad = Status::InvalidArgument("nope");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth
