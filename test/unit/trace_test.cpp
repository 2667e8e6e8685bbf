#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "emu/trace/trace.hpp"

namespace {

using pagelab::emu::Event;
using pagelab::emu::EventKind;
using pagelab::emu::Trace;
using pagelab::emu::TraceFilter;
using pagelab::emu::TraceFormat;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Trace, TextLinesAreReadableAndStable) {
  const Event e{.step = 12, .cpu = 1, .kind = EventKind::Fault, .a = 0x10000000, .b = 0x6};
  EXPECT_EQ(Trace::format_text(e), "      12  cpu1  fault          va=0x10000000 error=0x6 bits=W|U");
  const Event m{.step = 3, .cpu = 0, .kind = EventKind::Map, .a = 0x400000, .b = 0x2000, .c = 0, .text = "A"};
  EXPECT_EQ(Trace::format_text(m), "       3  cpu0  map            space=A addr=0x400000 len=0x2000 status=OK");
}

TEST(Trace, JsonLinesParseAndKeepFullAddresses) {
  const Event e{.step = 5, .cpu = 2, .kind = EventKind::Walk, .a = 0xFFFF800000001000, .b = 4, .c = 0x1000, .d = 0x2003};
  const auto j = nlohmann::json::parse(Trace::format_json(e));
  EXPECT_EQ(j["event"], "walk");
  EXPECT_EQ(j["cpu"], 2);
  EXPECT_EQ(j["va"], "0xffff800000001000");  // a string: JSON numbers lose bits past 2^53
  EXPECT_EQ(j["level"], 4);
}

TEST(Trace, ChromeOutputIsOneJsonDocumentWithATrackPerCpu) {
  const std::string path = ::testing::TempDir() + "pagelab_trace_test.json";
  std::string error;
  {
    auto trace = Trace::open(TraceFormat::Chrome, path, {}, true, error);
    ASSERT_TRUE(trace) << error;
    trace->emit(Event{.step = 1, .cpu = 0, .kind = EventKind::Access, .a = 0x400000});
    trace->emit(Event{.step = 2, .cpu = 1, .kind = EventKind::TlbMiss, .a = 0x400000});
    trace->emit(Event{.step = 3, .cpu = 0, .kind = EventKind::Note, .text = "quote \" and backslash \\"});
    trace->finish();
  }
  const auto doc = nlohmann::json::parse(slurp(path));
  std::set<int> tracks;
  int instants = 0;
  for (const auto& ev : doc["traceEvents"]) {
    if (ev["ph"] == "M") tracks.insert(ev["tid"].get<int>());
    if (ev["ph"] == "i") ++instants;
  }
  EXPECT_EQ(tracks, (std::set<int>{0, 1}));
  EXPECT_EQ(instants, 3);
  std::remove(path.c_str());
}

TEST(Trace, FiltersByCpuKindAndAddress) {
  TraceFilter filter;
  filter.cpus = std::set<std::uint32_t>{1};
  filter.kinds = std::set<EventKind>{EventKind::Access, EventKind::Fault};
  filter.address_range = std::make_pair(0x1000u, 0x1fffu);
  EXPECT_TRUE(filter.accepts(Event{.cpu = 1, .kind = EventKind::Access, .a = 0x1800}));
  EXPECT_FALSE(filter.accepts(Event{.cpu = 0, .kind = EventKind::Access, .a = 0x1800}));
  EXPECT_FALSE(filter.accepts(Event{.cpu = 1, .kind = EventKind::Walk, .a = 0x1800}));
  EXPECT_FALSE(filter.accepts(Event{.cpu = 1, .kind = EventKind::Fault, .a = 0x2000}));
  EXPECT_FALSE(filter.accepts(Event{.cpu = 1, .kind = EventKind::Note}));  // no address: outside any range
}

TEST(Trace, TailsKeepTheLastEventsOfEachCpuEvenWhenDisabled) {
  std::string error;
  auto trace = Trace::open(TraceFormat::Text, "", {}, false, error);
  for (std::uint64_t i = 0; i < 40; ++i) {
    trace->emit(Event{.step = i, .cpu = static_cast<std::uint32_t>(i % 2), .kind = EventKind::Note, .text = "x"});
  }
  const auto tail = trace->tail(1, 3);
  ASSERT_EQ(tail.size(), 3u);
  EXPECT_NE(tail.back().find("      39  cpu1"), std::string::npos);
  EXPECT_TRUE(trace->tail(7, 3).empty());
}

TEST(Trace, EventNamesRoundTrip) {
  for (int i = 0; i < pagelab::emu::kEventKindCount; ++i) {
    const auto kind = static_cast<EventKind>(i);
    EXPECT_EQ(pagelab::emu::event_kind_from_name(pagelab::emu::event_kind_name(kind)), kind);
  }
  EXPECT_FALSE(pagelab::emu::event_kind_from_name("bogus").has_value());
}

}  // namespace
