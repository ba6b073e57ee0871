-- wrk script for bench/peers_bench.ts: counts, per time bucket, the requests
-- wrk wrote, the responses it read and the responses that were not 2xx, and
-- writes them as JSON when wrk ends (at -d, or on SIGINT).
--
--   wrk ... -s bench/peers/timeline.lua URL -- OUT.json [BUCKET_MS]
--
-- wrk 4.1 gives Lua no wall clock (os.time() counts seconds, os.clock() is
-- CPU time), so the time comes from clock_gettime(CLOCK_REALTIME) through
-- LuaJIT's FFI: the clock behind Deno's Date.now(), so the bench can put its
-- restart triggers on the same axis. Buckets are keyed by
-- floor(epoch_ms / BUCKET_MS).

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long sec; long nsec; } peers_timespec;
int clock_gettime(int clk_id, peers_timespec *tp);
]])

local REALTIME = 0
local ts = ffi.new("peers_timespec")

local function epoch_ms()
  ffi.C.clock_gettime(REALTIME, ts)
  return tonumber(ts.sec) * 1000 + tonumber(ts.nsec) / 1000000
end

-- One Lua state per wrk thread: these globals are per thread, and done()
-- (which runs in the main state) reads them with thread:get().
width = 10
out = ""
first_ms = 0
written = {}
answered = {}
bad = {}
codes = {}

local all_threads = {}
local raw_request = nil

function setup(thread)
  all_threads[#all_threads + 1] = thread
end

function init(args)
  out = args[1] or "timeline.json"
  width = tonumber(args[2]) or 10
  raw_request = wrk.format()
  first_ms = epoch_ms()
end

function request()
  local k = math.floor(epoch_ms() / width)
  written[k] = (written[k] or 0) + 1
  return raw_request
end

function response(status, headers, body)
  local k = math.floor(epoch_ms() / width)
  answered[k] = (answered[k] or 0) + 1
  if status < 200 or status >= 300 then
    bad[k] = (bad[k] or 0) + 1
    codes[status] = (codes[status] or 0) + 1
  end
end

local function add_all(total, part)
  for k, n in pairs(part) do
    total[k] = (total[k] or 0) + n
  end
end

local function pairs_json(map)
  local keys = {}
  for k in pairs(map) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local items = {}
  for i, k in ipairs(keys) do
    items[i] = string.format("[%d,%d]", k, map[k])
  end
  return "[" .. table.concat(items, ",") .. "]"
end

function done(summary, latency, requests)
  local w, a, b, c = {}, {}, {}, {}
  local start, bucket, path = nil, 10, "timeline.json"
  for _, thread in ipairs(all_threads) do
    add_all(w, thread:get("written"))
    add_all(a, thread:get("answered"))
    add_all(b, thread:get("bad"))
    add_all(c, thread:get("codes"))
    bucket = thread:get("width")
    path = thread:get("out")
    local t = thread:get("first_ms")
    if start == nil or t < start then
      start = t
    end
  end
  local e = summary.errors
  local f = assert(io.open(path, "w"))
  f:write(string.format(
    '{"bucketMs":%d,"startMs":%.3f,"endMs":%.3f,', bucket, start or 0,
    epoch_ms()))
  f:write('"written":' .. pairs_json(w) .. ',"answered":' .. pairs_json(a))
  f:write(',"non2xx":' .. pairs_json(b) .. ',"statuses":' .. pairs_json(c))
  f:write(string.format(
    ',"requests":%d,"durationUs":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d}}\n', summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  f:close()
end
