#pragma once
// Every limit of the limits core with its default, its unit and why (after caf/defaults.hpp
// and nats-server's const.go). Ceilings are the largest values `validate()` accepts.
// A test (tests/limits_config_test.cpp) pins every default: change one on purpose only.

#include <cstdint>

namespace levee::defaults {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t GiB = 1024 * MiB;

// -- per actor kind: [limits.default] and [limits.<kind>] -------------------------------

/// messages: accepted and not yet processed (queued or being handled). 1024 absorbs a
/// burst of a busy second while keeping the worst queueing delay at ~1k service times.
constexpr uint64_t mailbox_capacity = 1024;
constexpr uint64_t mailbox_capacity_ceiling = 1u << 24;

/// bytes of payload in the mailbox. 16 MiB = 16 max-size messages, so one kind cannot
/// hold the node budget alone.
constexpr uint64_t mailbox_capacity_bytes = 16 * MiB;
constexpr uint64_t mailbox_capacity_bytes_ceiling = 64 * GiB;

/// bytes in one message. 1 MiB, the same as NATS' max_payload: bigger payloads belong in
/// streams or files, and a permit can allow one larger message.
constexpr uint64_t max_message_bytes = 1 * MiB;
constexpr uint64_t max_message_bytes_ceiling = 1 * GiB;

/// msgs/s per actor; 0 = no rate limit. Off by default: the mailbox bound already stops
/// overload; rates are for fairness towards a specific kind.
constexpr uint64_t rate_msgs_per_sec = 0;
/// messages that may pass at once from idle; 0 = one second's worth of the rate.
constexpr uint64_t rate_burst_msgs = 0;

/// bytes/s per actor; 0 = no byte-rate limit.
constexpr uint64_t rate_bytes_per_sec = 0;
/// bytes that may pass at once from idle; 0 = one second's worth. Must admit one
/// max_message_bytes message.
constexpr uint64_t rate_burst_bytes = 0;

constexpr uint64_t rate_ceiling = uint64_t{1} << 40;

/// requests per requesting actor accepted and not yet answered. 64 lets a pipelined client
/// keep a few round trips busy without one client filling the whole mailbox.
constexpr uint64_t max_inflight_per_requester = 64;

/// ms: the retry hint on mailbox_full, too_many_inflight and memory_budget_exhausted,
/// where no exact time can be computed. About one drain of a small mailbox.
constexpr uint64_t overload_retry_after_ms = 10;
constexpr uint64_t overload_retry_after_ms_ceiling = 60'000;

// -- node-wide: [node] ------------------------------------------------------------------

/// bytes queued in all limited mailboxes of the node together. 256 MiB keeps a node well
/// inside a small VM while allowing hundreds of busy actors.
constexpr uint64_t memory_budget_bytes = 256 * MiB;
constexpr uint64_t memory_budget_bytes_ceiling = 1024 * GiB;

/// rejection log lines per second per actor kind; the rest are counted and summarised in
/// the next line, so a flood cannot flood the log.
constexpr uint64_t rejection_log_lines_per_sec = 5;
constexpr uint64_t rejection_log_burst_lines = 20;

/// slots per limited actor for coalescing rejection notices to fire-and-forget senders;
/// beyond this many distinct senders with unread notices, idle tallies are recycled.
constexpr uint64_t notice_table_slots = 1024;

/// us the I/O thread keeps looking for its next event before it sleeps in epoll_wait
/// (net/multiplexer.hpp). A frame that comes within the window needs no wake-up, which on a
/// VM costs ~40 us when it crosses CPUs; a node spends up to one window of CPU per burst
/// of work (events steadily closer than the window keep one CPU busy). 0 = sleep at once.
constexpr uint64_t node_busy_poll_us = 100;
constexpr uint64_t node_busy_poll_us_ceiling = 10'000;

// -- per listener: [net] ------------------------------------------------------------------

/// bytes of one frame's body. 1 MiB as NATS' max_payload; larger needs a permit.
constexpr uint64_t net_max_frame_bytes = 1 * MiB;
/// bytes of a body after LZ4 decompression: 4x the frame, enough for text and JSON.
constexpr uint64_t net_max_decompressed_bytes = 4 * MiB;
/// bytes: bodies above this are sent compressed when that shrinks them.
constexpr uint64_t net_compress_above_bytes = 4 * KiB;
/// frames/s per connection; 0 = no limit. 20k/s keeps one client from taking a core.
constexpr uint64_t net_max_msgs_per_sec = 20'000;
/// frames that may arrive at once from idle; 0 = one second's worth.
constexpr uint64_t net_burst_msgs = 0;
/// bytes/s per connection; 0 = no limit. 64 MiB/s, about half of loopback per core.
constexpr uint64_t net_max_bytes_per_sec = 64 * MiB;
/// bytes that may arrive at once; 0 = one second's worth.
constexpr uint64_t net_burst_bytes = 0;
/// requests per connection not yet answered: a pipelining client keeps a few round trips
/// busy; more only queues.
constexpr uint64_t net_max_inflight_requests = 256;
/// bytes written to a peer and not yet taken by its TCP stack. Above half of it the
/// connection stops reading the peer's requests and lends its streams no credit; an answer
/// that would take it beyond the bound ends its request with slow_consumer instead.
constexpr uint64_t net_max_write_buffer_bytes = 8 * MiB;
/// ms a peer may take none of the bytes waiting for it before the connection is closed as
/// slow_consumer: as long as the idle timeout, the time a silent peer is given.
constexpr uint64_t net_write_stall_timeout_ms = 30'000;
/// A streamed request's credit when it names none (Request.credit_batches / _bytes):
/// 16 batches and 4 MiB, a few frames of the default size in flight.
constexpr uint64_t net_stream_credit_batches = 16;
constexpr uint64_t net_stream_credit_bytes = 4 * MiB;
/// batches a connection lends the actor producing one stream at a time (the bytes: a
/// quarter of the write mark), whatever its peer granted: what one stream may put in the
/// connection's buffer.
constexpr uint64_t net_stream_lend_batches = 16;
/// connections per node, every peer together: a flood is refused with
/// too_many_connections. Room for the default fleet (server.max_satellites, 4096) and the
/// reserve below. Each connection is a file descriptor: the node raises its open-file
/// limit to fit (and warns when the hard limit does not allow it).
constexpr uint64_t net_max_connections = 4096 + 64;
/// of those, connections only peers that are not satellites may hold (operators'
/// `levee satellites`, `levee query`, clients): a full fleet never locks them out.
/// Satellites (the peers whose Hello says so) hold at most net.max_connections minus
/// this. 64 is more operators and dashboards than one server sees at once.
constexpr uint64_t net_reserved_connections = 64;
/// ms from accept to a valid Hello.
constexpr uint64_t net_handshake_timeout_ms = 5'000;
/// ms without a complete frame before a Ping; as long again without one closes.
constexpr uint64_t net_idle_timeout_ms = 30'000;
/// ms a started frame body may take to arrive (a slowloris holds one open forever).
constexpr uint64_t net_read_timeout_ms = 10'000;
/// bytes: the largest frame an overweight permit may allow; 0 = no permits.
constexpr uint64_t net_permit_ceiling_bytes = 16 * MiB;
/// ms a granted permit stays valid.
constexpr uint64_t net_permit_ttl_ms = 10'000;
/// ms a bridged request may wait for the actor that answers it.
constexpr uint64_t net_request_deadline_ms = 30'000;
/// ms a dialing node waits for the server to accept its TCP connection before it tries
/// again (with backoff): a server whose host drops SYNs costs this, not the OS's ~2 min.
constexpr uint64_t net_connect_timeout_ms = 5'000;

// -- the HTTP listener: [http] (http/README.md) ------------------------------------------

/// connections at once. 16: a Prometheus server or two, a load balancer's or Kubernetes'
/// probes and an operator's curl; a scrape takes milliseconds, so a node holding more is
/// being held open (slowloris), and the next one is answered 503.
constexpr uint64_t http_max_connections = 16;
constexpr uint64_t http_max_connections_ceiling = 1024;

/// bytes of one request: request line, headers and body together. 8 KiB: Prometheus and
/// curl send a few hundred bytes; 8 KiB is what nginx and Apache allow a header line.
constexpr uint64_t http_max_request_bytes = 8 * KiB;
constexpr uint64_t http_max_request_bytes_ceiling = 1 * MiB;

/// ms to receive one whole request (from its first byte; from the accept for a
/// connection's first one) and to send its answer. 10 s: Prometheus' default scrape
/// timeout; a client slower than that holds a slot the way a slowloris does.
constexpr uint64_t http_request_timeout_ms = 10'000;
constexpr uint64_t http_request_timeout_ms_ceiling = 600'000;

// -- the segment log: persistence/ -------------------------------------------------------

/// bytes of one record (key, value, headers): the same as a message on the wire, so that
/// whatever a node accepts it can store.
constexpr uint64_t log_max_record_bytes = 1 * MiB;
/// bytes of one encoded batch: a few max-size records, and the unit a replica fetches.
constexpr uint64_t log_max_batch_bytes = 4 * MiB;
/// bytes of one segment file: retention and recovery work in whole segments, so small
/// enough to drop often, large enough to keep the file count low.
constexpr uint64_t log_max_segment_bytes = 64 * MiB;
/// file descriptors one log keeps open for its segments; the least recently used closed
/// segment's is closed (and reopened when needed) past this. Many logs share a process's
/// descriptor limit (1024 by default on Linux).
constexpr uint64_t log_max_open_files = 64;
/// ms between syncs under the interval fsync policy: what a machine crash may lose.
constexpr uint64_t log_fsync_interval_ms = 1000;
/// bytes for compaction's key -> latest offset map (about 64 bytes + the key per key):
/// ~500k distinct 64-byte keys per pass; past it a pass compacts with the keys it has.
constexpr uint64_t log_compaction_map_bytes = 64 * MiB;
/// bytes read from a segment file at once by recovery, scans and compaction: a bounded
/// buffer whatever the file's size.
constexpr uint64_t log_read_chunk_bytes = 1 * MiB;
/// bytes of a satellite's source-position hint file: ~60 bytes a source, so far above any
/// config's sources; also what a damaged file can make recovery read at most.
constexpr uint64_t log_position_hint_max_bytes = 1 * MiB;

// -- streams: [stream], the defaults of a new stream and the broker's stream rules --------
// (streams/README.md). A stream's own values are set when it is created and kept in its
// catalog file; these are what a CreateStream that names none gets.

/// partitions of a new stream: one keeps every message in one order; more spread a
/// stream's load over leaders (and, with keys, keep each key's order).
constexpr uint64_t stream_partitions = 1;
/// partitions one stream may have: each is a directory, a segment log and (later) an
/// actor with its own descriptors.
constexpr uint64_t stream_partitions_ceiling = 1024;
/// bytes of one message (key, body, id and headers together), the same as a message on
/// the wire (net.max_frame_bytes) and as a record of the segment log, so whatever a
/// broker accepts it can store and send.
constexpr uint64_t stream_max_message_bytes = 1 * MiB;
/// A message is held whole in memory at every hop (publish frame, log batch, read batch):
/// past 64 MiB it belongs in a file, with its path in a message.
constexpr uint64_t stream_max_message_bytes_ceiling = 64 * MiB;
/// bytes one partition keeps: 1 GiB, as a satellite's store. Every stream has a byte
/// bound (0 is refused): a stream without one could fill the disk.
constexpr uint64_t stream_retention_max_bytes = 1 * GiB;
/// messages one partition keeps; 0 = bounded by bytes and age only.
constexpr uint64_t stream_retention_max_messages = 0;
/// ms a message is kept; 0 = bounded by bytes and count only. Age always drops whole
/// segments, whatever on_full says: time passing is not a stream being full.
constexpr uint64_t stream_retention_max_age_ms = 0;
/// bytes of one segment file of a partition: retention drops whole segments, so a stream
/// keeps between max_bytes - this and max_bytes (plus the segment being written).
/// Smaller than the satellite's 64 MiB: a stream's byte bound is per partition.
constexpr uint64_t stream_max_segment_bytes = 16 * MiB;
/// ms a message id is remembered for deduplication: 2 minutes, as JetStream's default
/// duplicate window: long enough for a publisher's retries after a reconnect.
constexpr uint64_t stream_dedupe_window_ms = 120'000;
/// message ids one partition remembers at once (the oldest are forgotten first, counted):
/// ~100 B each with its offset, so ~10 MiB at the most a partition spends on them.
constexpr uint64_t stream_dedupe_max_entries = 100'000;
/// bytes of one message id: a UUID is 36; 128 holds any sane id and bounds the window.
constexpr uint64_t stream_max_message_id_bytes = 128;
/// bytes of a subject or a subject pattern: NATS subjects in practice stay far below.
constexpr uint64_t stream_max_subject_bytes = 256;
/// tokens of a subject or pattern: bounds the index's walk per publish.
constexpr uint64_t stream_max_subject_tokens = 16;
/// ms between syncs of a partition under the interval fsync policy: what a machine crash
/// may lose (the log's own default).
constexpr uint64_t stream_fsync_interval_ms = log_fsync_interval_ms;
/// messages and bytes in one batch a partition's read returns: under the default frame
/// size with room to spare, and few enough that a reader's credit paces it.
constexpr uint64_t stream_read_max_messages = 1000;
constexpr uint64_t stream_read_max_bytes = 256 * KiB;
/// copies of each partition a CreateStream that names none gets on a clustered broker: 1,
/// so that a stream is replicated only when someone asked (a 3-broker cluster wants 3).
constexpr uint64_t stream_replication_factor = 1;
/// replicas that must be in the ISR for an ack = all publish to be taken (below it:
/// insufficient_replicas): 1 by default, i.e. the leader alone may acknowledge; R3 streams
/// usually want 2, so one replica may be down without losing durability or availability.
constexpr uint64_t stream_min_insync_replicas = 1;
/// replicas a stream may ask for: each one is a fetch loop and a copy of the log.
constexpr uint64_t stream_replication_factor_ceiling = 7;

// -- the broker: [broker] (broker/README.md) -----------------------------------------------

/// subscriptions one partition serves at once: each holds a response promise and a little
/// state in its leader, and the leader reads for each in turn, so the bound keeps one
/// partition's turn short. A consumer group of any size needs one per member.
constexpr uint64_t broker_max_subscriptions_per_partition = 1024;
/// consumer-group cursors (group, stream, partition) the broker holds in memory: ~100 B
/// each, so ~10 MiB at the most; a commit of a new cursor past it is refused. Clustered,
/// every broker holds the cluster's cursors (and each metadata snapshot carries them), so
/// the bound is over the cluster's, checked with the committing broker's value.
constexpr uint64_t broker_max_cursors = 100'000;
/// publishing connections whose rate the broker tracks at once (a bucket pair each, ~100 B);
/// idle ones are forgotten first, so only this many publishing at the same moment matter.
constexpr uint64_t broker_max_publishers = 10'000;
/// ms after which a publisher's buckets are forgotten: a full bucket is the same as none.
constexpr uint64_t broker_publisher_idle_ms = 60'000;
/// messages/s and bytes/s one publishing connection may publish; 0 = no per-connection
/// bound (the leaders' [limits.stream] rates still apply per stream).
constexpr uint64_t broker_publish_msgs_per_sec = 0;
constexpr uint64_t broker_publish_bytes_per_sec = 0;
/// ms between a leader's retention and compaction passes: append already applies
/// retention by size, so this pass is for age and quiet partitions; 10 s keeps a
/// max_age within 10 s of exact at the cost of one directory look per partition.
constexpr uint64_t broker_maintenance_interval_ms = 10'000;
/// ms without a heartbeat after which the metadata leader marks a broker unreachable
/// (broker/README.md "Sessions"). 6 s rides out a few lost beats (one every 1.5 s) and a
/// metadata election (about 1-2 s at the default election timeout) on a busy machine.
constexpr uint64_t broker_session_timeout_ms = 6'000;
/// ms a Raft follower waits without hearing its leader before it stands for election
/// (libraft's default); its heartbeats go every tenth of it.
constexpr uint64_t broker_raft_election_timeout_ms = 1'000;
/// ms a new broker (broker.join) waits at start to be added to the metadata group before it
/// gives up with the last refusal (broker/README.md "Adding and removing brokers"). 30 s
/// covers an election, another membership change ahead of it and libraft's catch-up (a
/// round gives up after 5 s without progress).
constexpr uint64_t broker_join_timeout_ms = 30'000;
/// bytes of batches one replica fetch is answered with, at most (broker/README.md
/// "Replicas"): about two default log batches' worth, so a catching-up follower moves
/// ~5 MB/s per partition at a 10 ms round trip, and far below net.max_frame_bytes (a
/// larger value is refused at start) so a fetch answer never needs a permit.
constexpr uint64_t broker_replica_fetch_max_bytes = 512 * KiB;
/// ms a leader holds a fetch that finds nothing new (long poll): a follower asks again at
/// most twice a second when idle, and is answered at once when messages arrive.
constexpr uint64_t broker_replica_fetch_max_wait_ms = 500;
/// ms a follower may go without catching up with its leader's log end (or without
/// fetching at all) before the leader asks the controller to drop it from the ISR: long
/// enough to ride out a GC-like pause or a burst, short enough that an ack = all publish
/// does not wait on a dead replica for long (Kafka's replica.lag.time.max.ms is 30 s).
constexpr uint64_t broker_replica_max_lag_ms = 10'000;
/// metadata commands queued or in flight at the Raft node (metadata/README.md): metadata
/// changes are rare (registrations, stream creation, leader changes); a burst larger than
/// 256 means a caller is looping.
constexpr uint64_t metadata_max_pending_commands = 256;

// -- the query language: query/QUERY.md ---------------------------------------------------

/// bytes of one query's text. 4 KiB holds any query a person writes and a generated one
/// with dozens of terms, and bounds the parser's work before it starts; the CLI checks it
/// before it sends and the server before it parses the request, so a long text is refused
/// for what it is, not as a frame too large. The query language's other limits are in
/// query/query.hpp.
constexpr uint64_t query_max_text_bytes = 4 * KiB;

// -- the server: registry and proxyers, [server] ------------------------------------------

/// ms between a satellite's heartbeats (told to it when it registers), unless it asks for
/// a longer one. 1 s makes a dead satellite visible within seconds at one small frame
/// per second per satellite; a large fleet asks for more (satellite.heartbeat_interval_ms).
constexpr uint64_t server_heartbeat_interval_ms = 1000;
/// ms: the longest heartbeat interval a satellite may ask for (satellite.
/// heartbeat_interval_ms): a fleet of 100,000 beating every 10 s is 10,000 beats a second;
/// a minute is still a dead satellite noticed within minutes (and a closed connection
/// at once).
constexpr uint64_t server_max_heartbeat_interval_ms = 60'000;
/// heartbeats missed before a satellite is `unhealthy` (no new queries go to it): 3
/// tolerates a GC-like pause or one lost beat without flapping.
constexpr uint64_t server_unhealthy_after = 3;
/// heartbeats missed before it is `disconnected` and its connection is closed (queries
/// running on it fail with `unavailable`): 10 s at the default interval.
constexpr uint64_t server_disconnect_after = 10;
/// satellites in the registry, disconnected ones included (the oldest of those is
/// forgotten first when a new one registers at the bound).
constexpr uint64_t server_max_satellites = 4096;
/// queries running at once on the server: each holds a proxyer and work on satellites.
constexpr uint64_t server_max_queries = 256;
/// queries one client connection may run at once, so one client cannot take them all.
constexpr uint64_t server_max_queries_per_client = 16;
/// bytes of results one query may return (64 MiB): a query is for reading, exports
/// belong in a stream consumer. An answer past it ends with the rows that fit, marked
/// partial (QueryStats.partial).
constexpr uint64_t server_max_result_bytes = 64 * MiB;
/// bytes of one query's results a proxyer holds or lets its satellites send ahead of what
/// the client has read (flow control): a few batches of the default size in flight, and
/// at most server.max_queries of these per server.
constexpr uint64_t server_query_window_bytes = 1 * MiB;
/// result batches of one query likewise.
constexpr uint64_t server_query_window_batches = 16;
/// ms a query may run when the client asks for no deadline (and the most it may ask).
constexpr uint64_t server_query_deadline_ms = 30'000;
/// `satellites` requests that may wait for the list to change at once (each holds a
/// response and a slot of its connection's in-flight requests until it is answered).
constexpr uint64_t server_max_list_watchers = 64;
/// of those, from one connection: one client cannot take them all.
constexpr uint64_t server_max_list_watchers_per_client = 4;
/// ms such a request may wait: below net.request_deadline_ms, so the answer comes first.
constexpr uint64_t server_max_list_wait_ms = 10'000;
/// satellites in one answer to `satellites` (a page; SatellitesRequest.limit asks for fewer,
/// SatelliteList.next_after_id continues): at ~300 B each, ~300 KiB, far below the write
/// bound, where a whole fleet of 100,000 would be ~9 MiB.
constexpr uint64_t server_max_list_page = 1000;
/// bytes of one such page (satellites with large labels): under the default frame size.
constexpr uint64_t server_max_list_page_bytes = 512 * KiB;
/// registrations the registry admits per second; more are refused (rate_limited) with a
/// retry_after that spreads them over the following seconds, so a fleet that reconnects
/// after a server restart is admitted at a steady rate instead of all at once.
constexpr uint64_t server_max_registrations_per_sec = 1000;

// -- satellites, [satellite] --------------------------------------------------------------

/// ms between heartbeats the satellite asks the server for; 0 = whatever the server says
/// (server.heartbeat_interval_ms). The server grants at most server.max_heartbeat_interval_ms.
constexpr uint64_t satellite_heartbeat_interval_ms = 0;
/// percent: each heartbeat comes up to this much of the interval early, at random, and
/// the first after a registration at a random point of the first interval, so a fleet
/// that registered together (a server restart) does not beat in lockstep. Early only:
/// the server's count of missed beats is unchanged. 10% costs ~5% more beats.
constexpr uint64_t satellite_heartbeat_jitter_pct = 10;
constexpr uint64_t satellite_heartbeat_jitter_pct_ceiling = 50;

/// queries a satellite scans at once: each costs a scan's share of the store's time.
constexpr uint64_t satellite_max_concurrent_queries = 8;
/// rows per result batch: one batch is one frame; 1000 rows of ~200 B ~ 200 KiB.
constexpr uint64_t satellite_batch_max_rows = 1000;
/// bytes per result batch, under the default frame size (1 MiB) with room to spare.
constexpr uint64_t satellite_batch_max_bytes = 256 * KiB;
/// bytes of stored batches a query scans per step before other work (the connection,
/// appends, other queries, cancels) gets a turn: ~0.2 ms of scanning at ~1.3 GB/s.
constexpr uint64_t satellite_scan_step_bytes = 256 * KiB;
/// bytes of store batches kept in memory for queries that read them again (a dashboard
/// polling the last minutes): no pread, copy or CRC for them. A one-pass scan keeps none.
constexpr uint64_t satellite_read_cache_bytes = 8 * MiB;
/// ms between polls of a source: low latency for tailing without spinning.
constexpr uint64_t satellite_poll_interval_ms = 50;
/// events one poll of a source may take, so one source cannot monopolise the store.
constexpr uint64_t satellite_poll_max_events = 4096;
/// ms between retention passes over the store.
constexpr uint64_t satellite_retention_interval_ms = 10'000;
/// ms after which the store's segment being written is closed even if not full, so that
/// retention by age (whole segments) can drop old events of a quiet satellite.
constexpr uint64_t satellite_max_segment_age_ms = 3'600'000;
/// bytes the store keeps (whole segments are dropped past it): 1 GiB per satellite.
constexpr uint64_t satellite_retention_max_bytes = 1 * GiB;
/// bytes/s of closed store segments the background scrub reads and verifies
/// (persistence/FORMAT.md "Scrub"); 0 = no scrub. 8 MiB/s is a few percent of one disk's
/// sequential reads and ~6 ms of checksumming a second, and still covers the default
/// 1 GiB store in about two minutes.
constexpr uint64_t satellite_scrub_bytes_per_sec = 8 * MiB;
/// ms from the end of one scrub pass to the start of the next: at the defaults a full
/// store is read a few minutes an hour, and damage is known within about an hour.
constexpr uint64_t satellite_scrub_interval_ms = 3'600'000;

} // namespace levee::defaults
