#include "streams/stream_catalog.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "limits/printable.hpp"
#include "streams/partition_choice.hpp"

namespace levee::streams {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view creating_suffix = ".creating";
constexpr std::string_view deleting_suffix = ".deleting";
/// A catalog file is a few hundred bytes; this bounds what a damaged one makes us read.
constexpr int64_t max_catalog_file_bytes = 64 * 1024;

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

status io_failure(const std::string& what, const std::string& path, int err) {
  return status::error(code::storage_error,
                       what + " " + path + ": " + std::strerror(err < 0 ? -err : err));
}

std::string partition_dir(const std::string& stream_dir, uint32_t p) {
  return stream_dir + "/partition-" + std::to_string(p);
}

/// The whole file at `path` (at most `cap` bytes); storage_error naming it otherwise.
result<std::string> read_small_file(persistence::file_io& io, const std::string& path, int64_t cap) {
  int fd = io.open(path, false);
  if (fd < 0)
    return io_failure("cannot open", path, fd);
  auto size = io.size(fd);
  if (size < 0) {
    io.close(fd);
    return io_failure("cannot read the size of", path, static_cast<int>(size));
  }
  if (size > cap) {
    io.close(fd);
    return status::error(code::storage_error,
                         path + " is damaged: it is " + std::to_string(size)
                           + " bytes, more than a catalog file ever is ("
                           + std::to_string(cap) + "): restore it from a backup, or delete "
                                                   "the stream's directory to drop the stream");
  }
  std::string out(static_cast<size_t>(size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    auto n = io.pread(fd, out.data() + done, out.size() - done, done);
    if (n <= 0) {
      io.close(fd);
      return io_failure("cannot read", path, n < 0 ? static_cast<int>(n) : EIO);
    }
    done += static_cast<size_t>(n);
  }
  io.close(fd);
  return out;
}

} // namespace

// -- stream ------------------------------------------------------------------------------

std::string stream::directory() const {
  return dir_;
}

result<partition_log*> stream::partition(uint32_t p) {
  if (p >= partitions_.size())
    return status::error(code::not_found,
                         "stream '" + config_.name + "' has no partition " + std::to_string(p)
                           + ": its partitions are 0 to " + std::to_string(partitions_.size() - 1));
  if (!partitions_[p])
    return damage_[p];
  return partitions_[p].get();
}

result<uint32_t> stream::choose_partition(std::optional<uint32_t> named, std::string_view key) {
  return streams::choose_partition(config_.name, partition_count(), named, key, turn_);
}

// -- stream_catalog ----------------------------------------------------------------------

result<std::unique_ptr<stream_catalog>> stream_catalog::open(catalog_options opts) {
  std::unique_ptr<stream_catalog> c{new stream_catalog(std::move(opts))};
  c->io_ = c->opts_.io != nullptr ? c->opts_.io : &persistence::posix_io();
  std::error_code ec;
  fs::create_directories(c->opts_.data_dir, ec);
  if (ec)
    return status::error(code::storage_error, "cannot create the data directory "
                                                + c->opts_.data_dir + ": " + ec.message());
  std::vector<std::string> names;
  for (fs::directory_iterator it{c->opts_.data_dir, ec}, end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec))
      continue;  // not ours: streams are directories
    auto name = it->path().filename().string();
    // A data directory may be a file system's root (lost+found); a name starting with a
    // dot is no stream name (letters, digits, _ and -): the broker's own (.raft).
    if (name == "lost+found" || name.front() == '.')
      continue;
    if (ends_with(name, creating_suffix) || ends_with(name, deleting_suffix)) {
      // A create or delete that a crash interrupted: never a whole stream.
      fs::remove_all(it->path(), type_ec);
      continue;
    }
    names.push_back(name);
  }
  if (ec)
    return status::error(code::storage_error, "cannot list the data directory "
                                                + c->opts_.data_dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  for (auto& name : names)
    c->load(name);
  return c;
}

std::string stream_catalog::path_of(std::string_view name) const {
  return opts_.data_dir + "/" + std::string{name};
}

partition_options stream_catalog::partition_options_for(const stream& s, uint32_t p) const {
  partition_options o;
  o.dir = partition_dir(s.dir_, p);
  o.config = s.config_;
  o.partition = p;
  o.clock = opts_.clock;
  o.io = opts_.io;
  o.read_cache_bytes = opts_.read_cache_bytes;
  return o;
}

void stream_catalog::open_partition(stream& s, uint32_t p, persistence::corruption_policy policy,
                                    persistence::recovery_report* report) {
  auto o = partition_options_for(s, p);
  auto where = "partition " + std::to_string(p) + " of stream '" + s.config_.name + "'";
  std::error_code ec;
  if (policy == persistence::corruption_policy::fail && !fs::is_directory(o.dir, ec)) {
    s.damage_[p] = status::error(
      code::storage_error,
      where + ": its directory " + o.dir
        + " is missing: restore it from a backup, or repair the partition to start it empty");
    return;
  }
  o.on_corruption = policy;
  auto log = partition_log::open(o, report);
  if (log) {
    s.partitions_[p] = std::move(*log);
    s.damage_[p] = status{};
    return;
  }
  auto err = log.error();
  if (err.code() == code::storage_error)
    s.damage_[p] = status::error(
      code::storage_error,
      where + " did not open: " + err.message()
        + "; to keep the messages before the damage and drop the rest, repair the partition, "
          "or restore " + o.dir + " from a backup");
  else
    s.damage_[p] = status::error(err.code(), where + " did not open: " + err.message());
}

void stream_catalog::load(const std::string& name) {
  auto dir = path_of(name);
  auto file = dir + "/" + std::string{catalog_file_name};
  auto problem = [&](status error) {
    problems_.push_back(load_problem{name, std::nullopt, file, std::move(error)});
  };
  if (auto st = validate_stream_name(name); !st) {
    problems_.push_back(load_problem{
      name, std::nullopt, dir,
      status::error(code::bad_request, dir + " is not a stream's directory (" + st.message()
                                         + "): move it out of the data directory")});
    return;
  }
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    problem(status::error(code::storage_error,
                          file + " is missing, so the stream in " + dir
                            + " cannot load: restore the file from a backup, or delete the "
                              "directory to drop the stream"));
    return;
  }
  auto text = read_small_file(*io_, file, max_catalog_file_bytes);
  if (!text) {
    problem(text.error());
    return;
  }
  auto cfg = decode_catalog_entry(*text, file, opts_.subjects);
  if (!cfg) {
    problem(cfg.error());
    return;
  }
  if (cfg->name != name) {
    problem(status::error(code::storage_error,
                          file + " is damaged: it names stream '" + printable(cfg->name)
                            + "' but lies in the directory of '" + name
                            + "': restore the file from a backup, or delete the directory"));
    return;
  }
  auto s = std::make_unique<stream>();
  s->id_ = next_id_++;
  s->config_ = std::move(*cfg);
  s->pattern_ = *subject_pattern::parse(s->config_.subject, opts_.subjects);  // validated
  s->dir_ = dir;
  s->partitions_.resize(s->config_.partitions);
  s->damage_.resize(s->config_.partitions);
  for (uint32_t p = 0; p < s->config_.partitions; ++p) {
    open_partition(*s, p, persistence::corruption_policy::fail, nullptr);
    if (!s->damage_[p].ok())
      problems_.push_back(load_problem{name, p, partition_dir(dir, p), s->damage_[p]});
  }
  index_.add(s->pattern_, s->id_);
  by_id_[s->id_] = s.get();
  streams_.emplace(name, std::move(s));
}

status stream_catalog::write_catalog_file(const std::string& dir, const stream_config& cfg) {
  auto path = dir + "/" + std::string{catalog_file_name};
  auto tmp = path + ".tmp";
  auto bytes = encode_catalog_entry(cfg);
  io_->unlink(tmp);  // a leftover of an earlier attempt
  int fd = io_->open(tmp, true);
  if (fd < 0)
    return io_failure("cannot create", tmp, fd);
  size_t done = 0;
  int err = 0;
  while (done < bytes.size() && err == 0) {
    auto n = io_->pwrite(fd, bytes.data() + done, bytes.size() - done, done);
    if (n < 0)
      err = static_cast<int>(n);
    else if (n == 0)
      err = -ENOSPC;
    else
      done += static_cast<size_t>(n);
  }
  if (err == 0)
    err = io_->fdatasync(fd);
  io_->close(fd);
  if (err == 0)
    err = io_->rename(tmp, path);
  if (err == 0)
    err = io_->sync_dir(dir);
  if (err != 0) {
    io_->unlink(tmp);
    return io_failure("cannot write", path, err);
  }
  return {};
}

result<stream*> stream_catalog::create(const stream_config& cfg) {
  if (auto st = validate(cfg, opts_.subjects); !st)
    return st;
  auto dir = path_of(cfg.name);
  std::error_code ec;
  if (streams_.count(cfg.name) > 0)
    return status::error(code::bad_request,
                         "stream '" + cfg.name + "' exists: delete it first, or choose another name");
  if (fs::exists(dir, ec))
    return status::error(code::bad_request,
                         "stream '" + cfg.name + "' cannot be created: " + dir
                           + " is in the way (a stream that did not load, see its problem); "
                             "repair or delete it first");
  auto building = dir + std::string{creating_suffix};
  fs::remove_all(building, ec);
  fs::create_directories(building, ec);
  if (ec)
    return status::error(code::storage_error, "cannot create " + building + ": " + ec.message());
  auto fail = [&](status st) {
    std::error_code ignored;
    fs::remove_all(building, ignored);
    return st;
  };
  for (uint32_t p = 0; p < cfg.partitions; ++p) {
    fs::create_directory(partition_dir(building, p), ec);
    if (ec)
      return fail(status::error(code::storage_error, "cannot create "
                                                       + partition_dir(building, p) + ": "
                                                       + ec.message()));
  }
  // Its last step syncs the directory: the partitions' entries with the file's.
  if (auto st = write_catalog_file(building, cfg); !st)
    return fail(st);
  if (int err = io_->rename(building, dir); err != 0)
    return fail(io_failure("cannot rename into place", building, err));
  if (int err = io_->sync_dir(opts_.data_dir); err != 0)
    return io_failure("cannot sync", opts_.data_dir, err);
  load(cfg.name);
  auto* s = find(cfg.name);
  if (s == nullptr)  // load() said why in problems_
    return problems_.back().error;
  return s;
}

status stream_catalog::remove(std::string_view name) {
  auto dir = path_of(name);
  auto it = streams_.find(name);
  std::error_code ec;
  if (it == streams_.end() && (validate_stream_name(name).ok() == false || !fs::exists(dir, ec)))
    return status::error(code::not_found, "no stream '" + printable(name) + "' in "
                                            + opts_.data_dir);
  if (it != streams_.end()) {
    index_.remove(it->second->pattern_, it->second->id_);
    by_id_.erase(it->second->id_);
    streams_.erase(it);  // closes its partitions' logs
  }
  problems_.erase(std::remove_if(problems_.begin(), problems_.end(),
                                 [&](const load_problem& p) { return p.stream == name; }),
                  problems_.end());
  // Renamed first: a crash part way leaves a `.deleting` directory, removed at the next
  // open, never half a stream that would load.
  auto doomed = dir + std::string{deleting_suffix};
  fs::remove_all(doomed, ec);
  if (int err = io_->rename(dir, doomed); err != 0)
    return io_failure("cannot rename for deletion", dir, err);
  if (int err = io_->sync_dir(opts_.data_dir); err != 0)
    return io_failure("cannot sync", opts_.data_dir, err);
  fs::remove_all(doomed, ec);
  if (ec)
    return status::error(code::storage_error, "cannot remove " + doomed + ": " + ec.message()
                                                + " (the next open removes it)");
  return {};
}

stream* stream_catalog::find(std::string_view name) {
  auto it = streams_.find(name);
  return it == streams_.end() ? nullptr : it->second.get();
}

std::vector<const stream*> stream_catalog::list() const {
  std::vector<const stream*> out;
  for (auto& [_, s] : streams_)
    out.push_back(s.get());
  return out;
}

void stream_catalog::match(const subject& s, std::vector<stream*>& out) const {
  std::vector<stream_id> ids;
  index_.match(s, ids);
  out.clear();
  for (auto id : ids)
    if (auto at = by_id_.find(id); at != by_id_.end())
      out.push_back(at->second);
}

result<persistence::recovery_report> stream_catalog::repair_partition(std::string_view name,
                                                                      uint32_t p) {
  auto* s = find(name);
  if (s == nullptr)
    return status::error(code::not_found, "no stream '" + printable(name) + "' is loaded");
  if (p >= s->partition_count())
    return s->partition(p).error();
  if (s->partitions_[p])
    return status::error(code::bad_request, "partition " + std::to_string(p) + " of stream '"
                                              + s->config_.name + "' is not damaged");
  persistence::recovery_report report;
  open_partition(*s, p, persistence::corruption_policy::truncate, &report);
  if (!s->partitions_[p])
    return s->damage_[p];
  problems_.erase(std::remove_if(problems_.begin(), problems_.end(),
                                 [&](const load_problem& lp) {
                                   return lp.stream == name && lp.partition == p;
                                 }),
                  problems_.end());
  return report;
}

} // namespace levee::streams
