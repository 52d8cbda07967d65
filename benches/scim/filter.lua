-- wrk script: `GET <base>/Users?filter=userName eq "<name>"` for a random user per request.
-- Env: BENCH_TOKEN (bearer token), BENCH_NAMES_FILE (one userName a line). The base path is the
-- path of the URL given to wrk, e.g. http://127.0.0.1:PORT/scim/v2/bench.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local paths = {}

function init(args)
  bench_init()
  for i, name in ipairs(bench_lines(bench_env("BENCH_NAMES_FILE"))) do
    paths[i] = wrk.path .. "/Users?filter=" .. bench_encode('userName eq "' .. name .. '"')
  end
end

function request()
  return wrk.format("GET", paths[math.random(#paths)], bench_headers)
end
