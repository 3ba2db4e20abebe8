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

}  // namespace runner
