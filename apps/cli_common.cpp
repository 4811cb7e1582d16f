#include "apps/cli_common.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <google/protobuf/descriptor.h>

#include "apps/exit_codes.hpp"
#include "events/codec.hpp"
#include "events/json.hpp"
#include "limits/printable.hpp"
#include "net/satellite.pb.h"
#include "query/query.hpp"

namespace levee::apps {

namespace po = boost::program_options;
using namespace std::chrono;

parsed_args parse_args(const char* sub, const po::options_description& opts,
                       const std::vector<std::string>& args,
                       const po::positional_options_description* positional,
                       po::variables_map* parsed, std::string* error) {
  po::variables_map vm;
  try {
    // Positionals are named here, not by boost: without a description boost drops them
    // silently (`levee satellites watch`), and with one it refuses extras without naming
    // them. An argument no subcommand expects is a usage error that says which.
    po::command_line_parser p{args};
    p.options(opts);
    auto options = p.run();
    std::vector<std::string> stray;
    for (auto& o : options.options) {
      if (o.position_key < 0 || !o.string_key.empty())
        continue;
      unsigned at = static_cast<unsigned>(o.position_key);
      if (positional && at < positional->max_total_count())
        o.string_key = positional->name_for_position(at);
      else
        stray.push_back(o.original_tokens.empty() ? std::string{} : o.original_tokens.front());
    }
    if (!stray.empty()) {
      std::string list;
      for (auto& s : stray)
        list += (list.empty() ? "'" : ", '") + s + "'";
      throw std::invalid_argument("unexpected argument" + std::string{stray.size() == 1 ? " " : "s "}
                                  + list + " (this command takes "
                                  + (positional && positional->max_total_count() > 0
                                       ? "only " + std::to_string(positional->max_total_count())
                                           + " argument" + (positional->max_total_count() == 1 ? "" : "s")
                                           + " besides its options"
                                       : std::string{"options only"})
                                  + ")");
    }
    po::store(options, vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    if (error) {
      *error = e.what();
      return {2};
    }
    return {usage_error(sub, e.what())};
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return {0};
  }
  if (parsed)
    *parsed = std::move(vm);
  return {};
}

int usage_error(const char* sub, const std::string& what) {
  std::fprintf(stderr, "levee %s: %s; run `levee %s --help`\n", sub, printable(what).c_str(),
               sub);
  return 2;
}

int config_error(const char* sub, const std::string& what) {
  std::fprintf(stderr, "levee %s: %s\n", sub, printable(what).c_str());
  return 2;
}

uint64_t whole_number_of(const char* option, const std::string& text, uint64_t min, uint64_t max,
                         const char* unit) {
  uint64_t v = 0;
  bool ok = !text.empty();
  for (char c : text) {
    if (c < '0' || c > '9' || v > (std::numeric_limits<uint64_t>::max() - (c - '0')) / 10) {
      ok = false;
      break;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (!ok || v < min || v > max)
    throw std::invalid_argument(std::string{"--"} + option + " " + text
                                + ": must be a whole number from " + std::to_string(min) + " to "
                                + std::to_string(max) + " " + unit);
  return v;
}

po::typed_value<std::string>* decimal_number(const char* option, double* out, double fallback,
                                             double above, double max, const char* unit) {
  *out = fallback;
  auto shown = [](double d) {
    std::ostringstream s;
    s << d;
    return s.str();
  };
  return po::value<std::string>()->default_value(shown(fallback))->notifier(
    [=](const std::string& text) {
      // Digits, one '.', no sign: strtod alone would take "nan", "inf", "0x1p3", " 5".
      bool ok = !text.empty() && text.find_first_not_of("0123456789.") == std::string::npos
                && std::count(text.begin(), text.end(), '.') <= 1 && text != ".";
      double v = ok ? std::strtod(text.c_str(), nullptr) : 0;
      if (!ok || !(v > above) || !(v <= max))
        throw std::invalid_argument(std::string{"--"} + option + " " + text
                                    + ": must be a number above " + shown(above) + " and at most "
                                    + shown(max) + " " + unit);
      *out = v;
    });
}

std::optional<flat_config> load_config_with_overrides(const char* sub, const std::string& path,
                                                      const std::vector<std::string>& overrides) {
  auto loaded = load_config_file(path);
  if (!loaded) {
    config_error(sub, loaded.error().message());
    return std::nullopt;
  }
  if (auto st = apply_overrides(*loaded, overrides); !st) {
    config_error(sub, st.message());
    return std::nullopt;
  }
  return std::move(*loaded);
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= text.size()) {
    auto end = text.find(',', at);
    if (end == std::string::npos)
      end = text.size();
    auto item = text.substr(at, end - at);
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos)
      out.push_back(item.substr(b, e - b + 1));
    at = end + 1;
  }
  return out;
}

std::optional<base::host_port> address_option(const char* sub, const char* option,
                                              const std::string& text) {
  base::host_port address;
  std::string error;
  if (!base::parse_host_port(option, text, address, error)) {
    usage_error(sub, error);
    return std::nullopt;
  }
  return address;
}

namespace {

std::string value_text(const events::value& v) {
  events::event e;
  e.fields.push_back(events::field{"v", v});
  auto json = events::to_json(e);  // {"ts":0,"v":...}
  auto at = json.find("\"v\":");
  return at == std::string::npos ? json : json.substr(at + 4, json.size() - at - 5);
}

/// A count group as one line of JSON: {"group":{"level":"ERROR"},"count":12} (the group
/// under a key of its own, so a by-field named "count" cannot collide).
std::string group_json(const events::event& key, uint64_t count) {
  std::string out = "{\"group\":{";
  bool first = true;
  for (auto& f : key.fields) {
    if (!first)
      out += ',';
    first = false;
    events::append_json_string(out, f.name);
    out += ':';
    out += value_text(f.val);
  }
  out += "},\"count\":" + std::to_string(count) + "}";
  return out;
}

/// "a (disconnected), b (unhealthy), and 3 more": the satellites a fan-out skipped.
std::string skipped_text(const wire::QueryStats& s) {
  std::string out;
  for (auto& k : s.skipped()) {
    auto& state = wire::SatelliteInfo::State_Name(k.state());
    out += (out.empty() ? "" : ", ") + printable(k.satellite_id()) + " ("
           + (state.empty() ? "state " + std::to_string(k.state()) : state) + ")";
  }
  if (s.skipped_total() > static_cast<uint32_t>(s.skipped_size()))
    out += ", and " + std::to_string(s.skipped_total() - s.skipped_size()) + " more";
  return out;
}

/// The last line of `levee query --json`: what a script checks before trusting the rows.
std::string summary_json(const wire::QueryStats& s) {
  std::string out = "{\"partial\":";
  out += s.partial() ? "true" : "false";
  out += ",\"reason\":";
  if (s.partial())
    events::append_json_string(out, s.partial_limit());
  else
    out += "null";
  out += ",\"rows\":" + std::to_string(s.rows_returned());
  out += ",\"skipped\":[";
  for (int i = 0; i < s.skipped_size(); ++i)
    out += (i == 0 ? "" : ",") + message_json(s.skipped(i));
  out += "],\"skipped_total\":" + std::to_string(s.skipped_total());
  out += ",\"stats\":" + message_json(s) + "}";
  return out;
}

} // namespace

int run_one_query(const client_options& co, const query_request& q, std::ostream& out,
                  std::ostream& err, const query_output& how) {
  // Refused here, for what it is, rather than by the client library as a frame too large
  // ("ask for a permit") or by the server after the trip.
  if (auto refused = query::check_text_bytes(q.text.size())) {
    err << "levee query: " << refused->to_string() << "\n";
    return 1;
  }
  client c{co};
  if (auto st = c.connect_with_backoff(seconds(5)); !st) {
    err << "levee query: cannot reach the server at " << printable(co.host) << ":" << co.port
        << ": " << printable(st.message()) << "\n";
    return 2;
  }
  wire::QueryRequest req;
  req.set_text(q.text);
  req.set_satellite_id(q.satellite_id);
  for (auto& [k, v] : q.selector)
    (*req.mutable_selector())[k] = v;
  req.set_deadline_ms(q.deadline_ms);
  uint64_t id = 0;
  // The query's deadline travels in the QueryRequest, where the server enforces and
  // names it; the request itself keeps the listener's deadline (a second longer for a
  // stream), so the query's own fires first.
  if (auto r = c.send_stream_request("query", req.SerializeAsString(), id)) {
    err << "levee query: " << r->to_string() << "\n";
    return 1;
  }
  auto wait = milliseconds(q.deadline_ms != 0 ? q.deadline_ms + 5000 : 65'000);
  events::event ev;
  for (;;) {
    auto r = c.receive(wait);
    if (r.rejected) {
      err << "levee query: " << r.rejected->to_string() << "\n";
      return r.rejected->code == code::unavailable && r.request_id == 0 ? 2 : 1;
    }
    if (r.batch) {
      wire::ResultBatch b;
      if (!b.ParseFromString(*r.payload)) {
        err << "levee query: a result batch that does not parse\n";
        return 1;
      }
      for (auto& row : b.events()) {
        if (auto st = events::decode(row, ev); !st) {
          err << "levee query: a row that does not decode: " << st.message() << "\n";
          return 1;
        }
        out << events::to_json(ev) << "\n";
      }
      for (auto& g : b.counts()) {
        if (auto st = events::decode(g.key(), ev); !st) {
          err << "levee query: a group that does not decode: " << st.message() << "\n";
          return 1;
        }
        if (how.json) {
          out << group_json(ev, g.count()) << "\n";
          continue;
        }
        std::string key;
        for (auto& f : ev.fields)
          key += (key.empty() ? "" : "\t") + value_text(f.val);
        out << (key.empty() ? std::string{"count"} : key) << "\t" << g.count() << "\n";
      }
      continue;
    }
    if (r.end_of_stream) {
      wire::QueryStats s;
      if (!s.ParseFromString(*r.payload)) {
        err << "levee query: a summary that does not parse; is the server the same Levee "
               "version as this client?\n";
        return 1;
      }
      auto rows_word = [&](uint64_t n) { return n == 1 ? " row" : " rows"; };
      // The marker is the last line of the data, where a reader of the rows looks.
      if (how.json)
        out << summary_json(s) << "\n";
      else if (s.partial())
        out << "-- partial: cut at " << printable(s.partial_limit()) << " (" << s.partial_max()
            << " bytes) after " << s.rows_returned() << rows_word(s.rows_returned()) << "\n";
      out.flush();
      err << s.rows_returned() << rows_word(s.rows_returned()) << " from "
          << s.satellites() << (s.satellites() == 1 ? " satellite" : " satellites")
          << ", scanned " << s.events_scanned() << " events in "
          << (s.elapsed_us() + 500) / 1000 << " ms (query " << s.query_id() << ")"
          << (s.truncated() ? ", cut at the limit" : "") << "\n";
      int rc = exit_code::ok;
      if (s.skipped_total() > 0) {
        err << "levee query: " << (how.strict ? "error (--strict): " : "") << "skipped "
            << s.skipped_total() << " matching "
            << (s.skipped_total() == 1 ? "satellite that was" : "satellites that were")
            << " not healthy, whose events are not in this answer: "
            << skipped_text(s) << "; `levee satellites --state unhealthy,disconnected` shows "
            << "them; run the query again once they are back"
            << (how.strict ? "" : " (--strict makes this an error)") << "\n";
        if (how.strict)
          rc = exit_code::query_skipped;
      }
      if (s.partial()) {
        err << "levee query: partial result: the answer reached " << printable(s.partial_limit())
            << " (" << s.partial_max() << " bytes) after " << s.rows_returned()
            << rows_word(s.rows_returned())
            << "; the rest was not sent. Narrow the query (a where clause, a shorter since), "
               "add a limit ('... limit N'), or raise "
            << printable(s.partial_limit()) << " in the server's config\n";
        rc = exit_code::query_partial;  // before query_skipped: the rows printed are cut
      }
      return rc;
    }
  }
}

bool wait_for_satellites(const client_options& co, const std::vector<std::string>& ids,
                         uint64_t min_events, milliseconds bound) {
  auto deadline = steady_clock::now() + bound;
  client c{co};
  while (steady_clock::now() < deadline) {
    auto r = c.request("satellites", wire::SatellitesRequest{}.SerializeAsString(), seconds(5));
    if (r.ok()) {
      wire::SatelliteList list;
      list.ParseFromString(*r.payload);
      size_t ready = 0;
      for (auto& id : ids)
        for (auto& s : list.satellites())
          if (s.satellite_id() == id && s.state() == wire::SatelliteInfo::healthy && s.store().events() >= min_events)
            ++ready;
      if (ready == ids.size())
        return true;
    }
    std::this_thread::sleep_for(milliseconds(50));  // polling a remote state, not a test
  }
  return false;
}

namespace {

namespace pb = google::protobuf;

void append_json(std::string& out, const pb::Message& m);

/// One value of `field` (the `index`-th when repeated).
void append_field_value(std::string& out, const pb::Message& m, const pb::FieldDescriptor* f,
                        int index) {
  auto* r = m.GetReflection();
  bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      out += std::to_string(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      out += std::to_string(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      out += std::to_string(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      out += std::to_string(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      events::append_json_double(out, rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      events::append_json_double(out, rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      out += (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false";
      break;
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      events::append_json_string(out, (rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f))->name());
      break;
    case pb::FieldDescriptor::CPPTYPE_STRING:
      events::append_json_string(out, rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      append_json(out, rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
      break;
  }
}

void append_json(std::string& out, const pb::Message& m) {
  auto* d = m.GetDescriptor();
  auto* r = m.GetReflection();
  out += '{';
  for (int i = 0; i < d->field_count(); ++i) {
    auto* f = d->field(i);
    if (i > 0)
      out += ',';
    events::append_json_string(out, f->name());
    out += ':';
    if (f->is_map()) {
      // Entries of a map field are messages (key = 1, value = 2), in no set order.
      std::map<std::string, std::string> sorted;
      auto* key = f->message_type()->field(0);
      auto* value = f->message_type()->field(1);
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        auto& entry = r->GetRepeatedMessage(m, f, j);
        std::string k, v;
        append_field_value(k, entry, key, -1);
        append_field_value(v, entry, value, -1);
        if (key->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING)
          k = "\"" + k + "\"";  // JSON keys are strings
        sorted[k] = v;
      }
      out += '{';
      bool first = true;
      for (auto& [k, v] : sorted) {
        out += (first ? "" : ",") + k + ":" + v;
        first = false;
      }
      out += '}';
    } else if (f->is_repeated()) {
      out += '[';
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        if (j > 0)
          out += ',';
        append_field_value(out, m, f, j);
      }
      out += ']';
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !r->HasField(m, f)) {
      out += "null";  // absent, not a message of zeros (StatsReply.io_loop)
    } else {
      append_field_value(out, m, f, -1);
    }
  }
  out += '}';
}

} // namespace

std::string message_json(const google::protobuf::Message& message) {
  std::string out;
  append_json(out, message);
  return out;
}

} // namespace levee::apps
