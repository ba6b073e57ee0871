-- wrk script of bench/restart_bench.ts: a timeline of the run. Read by
-- bench/lib/timeline.ts.
--
-- Usage: wrk ... -s bench/lib/timeline.lua URL -- OUT_PATH [BUCKET_MS]
--
-- wrk 4.1's Lua API has no wall clock (os.time() has 1 s resolution,
-- os.clock() is CPU time), so the time comes from clock_gettime(2)
-- (CLOCK_REALTIME) through LuaJIT's FFI: the same clock as Deno's Date.now()
-- and performance.timeOrigin + performance.now(), so the benches can place
-- their restart triggers on this timeline.
--
-- Per BUCKET_MS bucket (default 10; keyed by floor(epoch_ms / BUCKET_MS))
-- each wrk thread counts: requests written (request()), responses completed
-- (response()), and responses whose status is not 2xx. At the end (at -d, or
-- when wrk is stopped with SIGINT), done() gathers every thread's counts and
-- writes them to OUT_PATH as JSON.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timeline_timespec;
int clock_gettime(int clock_id, bench_timeline_timespec *tp);
]])

local CLOCK_REALTIME = 0
local timespec = ffi.new("bench_timeline_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_REALTIME, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

-- Per-thread state (each wrk thread has its own Lua state); done(), which
-- runs in the main state, reads these globals with thread:get().
bucket_ms = 10
sent = {}
received = {}
non2xx = {}
statuses = {}
started_ms = 0
out_path = ""

local request_text = nil
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  out_path = assert(args[1], "usage: -s timeline.lua URL -- OUT_PATH [BUCKET_MS]")
  bucket_ms = tonumber(args[2]) or 10
  request_text = wrk.format()
  started_ms = now_ms()
end

function request()
  local key = math.floor(now_ms() / bucket_ms)
  sent[key] = (sent[key] or 0) + 1
  return request_text
end

function response(status, headers, body)
  local key = math.floor(now_ms() / bucket_ms)
  received[key] = (received[key] or 0) + 1
  if status < 200 or status > 299 then
    non2xx[key] = (non2xx[key] or 0) + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

local function merge(into, from)
  for key, count in pairs(from) do
    into[key] = (into[key] or 0) + count
  end
end

local function json_counts(counts)
  local keys = {}
  for key in pairs(counts) do
    table.insert(keys, key)
  end
  table.sort(keys)
  local parts = {}
  for _, key in ipairs(keys) do
    table.insert(parts, string.format("[%d,%d]", key, counts[key]))
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

function done(summary, latency, requests)
  local all_sent, all_received, all_non2xx, all_statuses = {}, {}, {}, {}
  local first_start, width, path = nil, 10, nil
  for _, thread in ipairs(threads) do
    merge(all_sent, thread:get("sent"))
    merge(all_received, thread:get("received"))
    merge(all_non2xx, thread:get("non2xx"))
    merge(all_statuses, thread:get("statuses"))
    width = thread:get("bucket_ms")
    path = thread:get("out_path")
    local start = thread:get("started_ms")
    if first_start == nil or start < first_start then
      first_start = start
    end
  end
  local file = assert(io.open(path, "w"))
  file:write("{")
  file:write(string.format('"bucketMs":%d,', width))
  file:write(string.format('"startedMs":%.3f,', first_start or 0))
  file:write(string.format('"endedMs":%.3f,', now_ms()))
  file:write('"sent":' .. json_counts(all_sent) .. ",")
  file:write('"received":' .. json_counts(all_received) .. ",")
  file:write('"non2xx":' .. json_counts(all_non2xx) .. ",")
  file:write('"statuses":' .. json_counts(all_statuses) .. ",")
  file:write(string.format(
    '"summary":{"requests":%d,"durationUs":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}',
    summary.requests, summary.duration, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
  file:write("}\n")
  file:close()
end
