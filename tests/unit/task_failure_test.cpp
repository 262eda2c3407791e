// The one classification of failures (common/error.h) and the one translation of an exception
// into a task failure (common/agent/task_failure.h) that the build, fetch and register runners
// share.
#include "common/agent/task_failure.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/subprocess.h"

using namespace imgpipe;

TEST(ErrorKind, OnlyTransientAndStoppedMayRunAgain) {
  EXPECT_FALSE(mayRunAgain(ErrorKind::failed));
  EXPECT_TRUE(mayRunAgain(ErrorKind::transient));
  EXPECT_TRUE(mayRunAgain(ErrorKind::stopped));
  EXPECT_FALSE(mayRunAgain(ErrorKind::refused));
  EXPECT_EQ(kindOf(Error("x")), ErrorKind::failed);
  EXPECT_EQ(kindOf(Error("x", ErrorKind::refused)), ErrorKind::refused);
  EXPECT_EQ(kindOf(std::runtime_error("x")), ErrorKind::failed);
  EXPECT_EQ(toString(ErrorKind::transient), "transient");
}

TEST(TaskFailure, FromAnErrorCarriesItsMessageAndKind) {
  auto f = agent::failureFrom(Error("mirror did not answer", ErrorKind::transient), "packages");
  EXPECT_EQ(f.step, "packages");
  EXPECT_EQ(f.message, "mirror did not answer");
  EXPECT_TRUE(f.retryable);
  EXPECT_FALSE(agent::failureFrom(Error("bad checksum"), "fetch_base").retryable);
  EXPECT_FALSE(agent::failureFrom(std::logic_error("bug"), "x").retryable);
}

TEST(TaskFailure, FromACommandErrorSplitsSummaryAndOutput) {
  CommandResult r;
  r.exitCode = 100;
  r.tail = {"E: Unable to locate package nope"};
  CommandError e("apt-get install nope", r, ErrorKind::failed);
  EXPECT_NE(std::string(e.what()).find("last output"), std::string::npos);
  auto f = agent::failureFrom(std::make_exception_ptr(e), "packages");
  EXPECT_EQ(f.message, "command failed: apt-get install nope (exit code 100)");
  EXPECT_EQ(f.exitCode, 100);
  EXPECT_EQ(f.outputTail, r.tail);
  EXPECT_FALSE(f.retryable);
  // A command that was stopped is stopped, whatever the caller thought of it.
  r.stopped = true;
  EXPECT_EQ(CommandError("sleep 9", r, ErrorKind::failed).kind(), ErrorKind::stopped);
  EXPECT_TRUE(agent::failureFrom(CommandError("sleep 9", r), "scripts").retryable);
}
