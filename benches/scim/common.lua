-- Shared by filter.lua and patch.lua (loaded with dofile from the same directory); part of the
-- SCIM load benchmark in benches/scim.rs.
--
-- Gives every wrk thread a fixed random seed (so runs pick the same sequence of users), reads
-- the bench's inputs from environment variables, and counts response statuses: `done` prints
-- one `bench-status <code> <count>` line per status for benches/scim.rs to check.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("bench_thread", #threads)
end

-- The value of an environment variable that must be set.
function bench_env(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    error(name .. " is not set (benches/scim.rs sets it)")
  end
  return value
end

-- The non-empty lines of a file.
function bench_lines(path)
  local file, err = io.open(path, "r")
  if not file then
    error("cannot open " .. path .. ": " .. tostring(err))
  end
  local lines = {}
  for line in file:lines() do
    if line ~= "" then
      lines[#lines + 1] = line
    end
  end
  file:close()
  if #lines == 0 then
    error(path .. " holds no lines")
  end
  return lines
end

-- RFC 3986 percent-encoding of everything but unreserved characters.
function bench_encode(text)
  return (text:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- Per-thread set-up common to both scripts: the seed and the request headers.
function bench_init()
  math.randomseed(7919 * (bench_thread or 1))
  bench_headers = {
    ["Authorization"] = "Bearer " .. bench_env("BENCH_TOKEN"),
    ["Accept"] = "application/scim+json",
  }
end

statuses = {}

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for code, n in pairs(counts) do
      total[code] = (total[code] or 0) + n
    end
  end
  local codes = {}
  for code in pairs(total) do
    codes[#codes + 1] = code
  end
  table.sort(codes)
  for _, code in ipairs(codes) do
    io.write(string.format("bench-status %d %d\n", code, total[code]))
  end
end
