// A fresh log in a folder of its own for each test, removed with the folder.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>

#include "runner/store.h"

namespace runner {

class StoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/runner-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    store_ = std::make_unique<Store>(dir_ / "runner.db", Store::Access::kReadWrite);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

// Records a successful attempt of `seconds` with a peak, in an earlier job:
// the history the order and the budget learn from.
inline void remember_run(Store& store, const Job& job, ClusterId c, double seconds,
                         std::uint64_t peak_mib = 100) {
  auto row = store.record_start(job, AttemptStart{c, 1, 1, 1000.0, "log"});
  AttemptEnd end;
  end.state = AttemptState::kDone;
  end.exit_code = 0;
  end.finished_at = 1000.0 + seconds;
  end.peak_rss_kib = peak_mib * 1024;
  store.record_end(job, row, c, end);
}

}  // namespace runner
