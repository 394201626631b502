-- Types text into a real Neovim key by key, with the plugin's `record_trace` on, so the server records the session:
-- the keys go through a child `nvim --embed --headless` as a UI would send them (nvim_input), so the edits the
-- server sees are Neovim's own incremental didChange notifications, and the plugin asks for suggestions on its own
-- (TextChangedI -> debounce -> automatic textDocument/inlineCompletion) between keys, as it does for a person.
-- Run by tests/test_editors_neovim_record.py and tests/traces/record_neovim.py:
--
--   QS_INPUT=/tmp/input.json QS_OUT=/tmp/report.json nvim --headless -u NONE -i NONE -n -c 'luafile editors/neovim/test/record_trace.lua'
--
-- QS_INPUT is a JSON object:
--   plugin, python, server_dir, log_file  the plugin folder (editors/neovim), the server's interpreter, the checkout
--                                         and the server's log file
--   record_trace                          the directory the server records into (the plugin's `record_trace`)
--   file, filetype                        the file to edit and its filetype (the didOpen languageId)
--   line, col                             where the cursor goes first (1-based line, 0-based byte column)
--   start                                 the keys that enter insert mode there, e.g. "O" or "i"
--   keys                                  [[key, delay_ms], ...]: each key in nvim_input notation ("a", "<CR>",
--                                         "<Tab>", "<BS>", "<lt>"), sent delay_ms after the previous one
--   setup                                 (optional) more options for require("quicksilver").setup()
--   settle_ms                             (optional) the least wait after the last key, before leaving insert mode
--
-- 'autoindent' and the like are switched off, so the buffer holds exactly what the keys type. The <Tab> accept
-- mapping is off unless `setup.keys` says otherwise: a typed Tab inserts a Tab, it does not take a suggestion.
-- After the last key it waits until every request in the trace has its answer, leaves insert mode and stops the
-- server (which closes the trace). Writes one JSON object to QS_OUT: the final buffer lines, the trace files, the
-- Neovim version, the keys sent and timing; exits 0, or 1 after writing {"error": ...}.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/harness.lua")
local report, lua, step, wait_for = H.report, H.lua, H.step, H.wait_for
local child

local function now_ms()
  return (vim.loop.hrtime() / 1e6)
end

-- The trace files in the record directory, and how many requests and answers the newest one holds so far.
local function trace_files(dir)
  return vim.fn.glob(dir .. "/quicksilver-*.jsonl", false, true)
end

local function trace_counts(path)
  local counts = { request = 0, answer = 0, change = 0, open = 0 }
  for _, line in ipairs(vim.fn.readfile(path)) do
    local ok, event = pcall(vim.fn.json_decode, line)
    if ok and type(event) == "table" and counts[event.type] ~= nil then
      counts[event.type] = counts[event.type] + 1
    end
  end
  return counts
end

local function run()
  local input = vim.fn.json_decode(table.concat(vim.fn.readfile(os.getenv("QS_INPUT")), "\n"))
  local dir = input.record_trace
  child = vim.fn.jobstart({ vim.v.progpath, "--embed", "--headless", "-u", "NONE", "-i", "NONE", "-n",
    "--cmd", "set rtp^=" .. vim.fn.fnameescape(input.plugin) }, { rpc = true })
  H.child = child
  assert(child > 0, "could not start a child Neovim")
  report.nvim_version = lua("local v = vim.version(); return ('%d.%d.%d'):format(v.major, v.minor, v.patch)")
  vim.rpcrequest(child, "nvim_command", "runtime plugin/quicksilver.lua")
  vim.rpcrequest(child, "nvim_command", "edit " .. vim.fn.fnameescape(input.file))
  vim.rpcrequest(child, "nvim_command", "setlocal filetype=" .. input.filetype)
  -- Exactly the typed characters: no indentation, wrapping or tab expansion of Neovim's own.
  vim.rpcrequest(child, "nvim_command", "setlocal noautoindent nosmartindent nocindent indentexpr= indentkeys= "
    .. "formatoptions= textwidth=0 wrapmargin=0 noexpandtab nosmarttab softtabstop=0 nolisp")
  local setup = vim.tbl_deep_extend("force", { keys = { accept = false } }, input.setup or {})
  setup.python, setup.server_dir, setup.log_file, setup.record_trace =
    input.python, input.server_dir, input.log_file, dir
  lua("require('quicksilver').setup(...)", setup)
  wait_for("the server to initialize", 120000, function()
    return lua("local c = require('quicksilver').client(); return c ~= nil and c.initialized")
  end)
  report.trace_files = wait_for("the trace file", 10000, function()
    local files = trace_files(dir)
    return #files > 0 and files or nil
  end)
  step("initialized")

  vim.rpcrequest(child, "nvim_win_set_cursor", 0, { input.line, input.col or 0 })
  vim.rpcrequest(child, "nvim_input", input.start)
  wait_for("insert mode", 10000, function() return lua("return vim.api.nvim_get_mode().mode") == "i" end)
  step("insert mode")

  local t0 = now_ms()
  local late = 0 -- how far the keys fell behind their schedule (ms), at most
  local due = t0
  for _, pair in ipairs(input.keys) do
    due = due + pair[2]
    local left = due - now_ms()
    if left > 0 then
      vim.wait(left)
    else
      late = math.max(late, -left)
    end
    vim.rpcrequest(child, "nvim_input", pair[1])
  end
  report.keys_sent = #input.keys
  report.typing_ms = now_ms() - t0
  report.max_late_ms = late
  step("typed")

  -- The plugin's last automatic request comes a debounce after the last key: let every request be answered.
  local last_key = now_ms()
  local path = report.trace_files[1]
  wait_for("the answers to every request", 180000, function()
    local counts = trace_counts(path)
    report.counts = counts
    return now_ms() - last_key >= (input.settle_ms or 1000) and counts.answer >= counts.request
  end)
  report.mode_before_esc = lua("return vim.api.nvim_get_mode().mode")
  vim.rpcrequest(child, "nvim_input", "<Esc>")
  wait_for("normal mode", 10000, function() return lua("return vim.api.nvim_get_mode().mode") == "n" end)
  report.lines = lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")
  report.eol = lua("return vim.bo.eol")
  report.changedtick = lua("return vim.api.nvim_buf_get_changedtick(0)")
  step("left insert mode")

  lua("require('quicksilver').stop()")
  report.stopped = vim.wait(30000, function() return lua("return #vim.lsp.get_active_clients()") == 0 end, 100)
  report.counts = trace_counts(path)
  step("stopped")
end

H.main(run)
