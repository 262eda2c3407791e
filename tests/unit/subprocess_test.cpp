#include "common/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

using namespace imgpipe;
using namespace std::chrono_literals;

TEST(Subprocess, CapturesStdoutAndExitCode) {
  SubprocessOptions o;
  o.argv = {"sh", "-c", "echo hello; echo oops >&2; exit 3"};
  o.captureStdout = true;
  auto r = runCommand(o);
  EXPECT_EQ(r.exitCode, 3);
  EXPECT_EQ(r.stdoutText, "hello\n");
  ASSERT_EQ(r.tail.size(), 1u);
  EXPECT_EQ(r.tail[0], "oops");
}

TEST(Subprocess, StreamsLinesAndKeepsTail) {
  std::vector<std::string> seen;
  SubprocessOptions o;
  o.argv = {"sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done"};
  o.tailLines = 2;
  o.onLine = [&](std::string_view l) { seen.emplace_back(l); };
  auto r = runCommand(o);
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(r.tail, (std::vector<std::string>{"line4", "line5"}));
}

TEST(Subprocess, FeedsInput) {
  SubprocessOptions o;
  o.argv = {"cat"};
  o.input = "abc";
  o.captureStdout = true;
  EXPECT_EQ(checkCommand(o), "abc");
}

TEST(Subprocess, FailureNamesCommandAndOutput) {
  try {
    checkCommand({"sh", "-c", "echo broken pipe dream >&2; exit 7"});
    FAIL();
  } catch (const CommandError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("exit code 7"), std::string::npos) << msg;
    EXPECT_NE(msg.find("broken pipe dream"), std::string::npos) << msg;
  }
}

TEST(Subprocess, MissingProgramIsAClearError) {
  try {
    checkCommand({"/nonexistent/tool"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot run /nonexistent/tool"), std::string::npos);
  }
}

TEST(Subprocess, TimeoutKillsTheWholeGroup) {
  SubprocessOptions o;
  // The grandchild would outlive a kill of just the shell.
  o.argv = {"sh", "-c", "sleep 30 & sleep 30; wait"};
  o.timeout = 300ms;
  o.killGrace = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto r = runCommand(o);
  EXPECT_TRUE(r.timedOut);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(Subprocess, StopTokenTerminates) {
  std::stop_source stop;
  SubprocessOptions o;
  o.argv = {"sleep", "30"};
  o.stop = stop.get_token();
  std::jthread t([&] {
    std::this_thread::sleep_for(200ms);
    stop.request_stop();
  });
  auto r = runCommand(o);
  EXPECT_TRUE(r.stopped);
}

TEST(Subprocess, DestructorKillsRunningChild) {
  pid_t pid;
  {
    SubprocessOptions o;
    o.argv = {"sleep", "30"};
    Subprocess p(o);
    pid = p.pid();
  }
  EXPECT_NE(::kill(pid, 0), 0);  // reaped and gone
}
