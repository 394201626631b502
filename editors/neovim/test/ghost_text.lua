-- Drives a real Neovim (a child `nvim --embed --headless`) with keystrokes, as a user would, and checks the plugin:
-- typing asks the real server for a suggestion (debounced, automatic), the ghost text is an extmark, <C-]>
-- dismisses it, <M-\> asks again, <Tab> inserts it. Run by tests/test_editors_neovim.py:
--
--   QS_PLUGIN=editors/neovim QS_PYTHON=.venv/bin/python QS_SERVER_DIR=. QS_LOG=/tmp/server.log QS_FILE=x.py \
--   QS_LINE=4 QS_TYPE=y QS_OUT=/tmp/report.json nvim --headless -u NONE -i NONE -c 'luafile editors/neovim/test/ghost_text.lua'
--
-- Writes one JSON object to QS_OUT; exits 0, or 1 after writing {"error": ...}. Asserts nothing about the
-- suggestion's content (the bundled model is an early checkpoint): the Python test checks the report.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/harness.lua")
local report, lua, step, wait_for = H.report, H.lua, H.step, H.wait_for
local child

local SUGGESTION = "return require('quicksilver').suggestion()"
local function run()
  local plugin = os.getenv("QS_PLUGIN")
  local line = tonumber(os.getenv("QS_LINE"))
  child = vim.fn.jobstart({ vim.v.progpath, "--embed", "--headless", "-u", "NONE", "-i", "NONE", "-n",
    "--cmd", "set rtp^=" .. vim.fn.fnameescape(plugin) }, { rpc = true })
  H.child = child
  assert(child > 0, "could not start a child Neovim")
  vim.rpcrequest(child, "nvim_command", "runtime plugin/quicksilver.lua")
  vim.rpcrequest(child, "nvim_command", "edit " .. vim.fn.fnameescape(os.getenv("QS_FILE")))
  vim.rpcrequest(child, "nvim_command", "setlocal filetype=python")
  lua([[require("quicksilver").setup({
    python = ..., server_dir = select(2, ...), log_file = select(3, ...),
    debounce_ms = 30, settings = { logLevel = "info" },
  })]], os.getenv("QS_PYTHON"), os.getenv("QS_SERVER_DIR"), os.getenv("QS_LOG"))
  report.commands = lua("return vim.fn.exists(':QuicksilverSuggest') == 2 and vim.fn.exists(':QuicksilverAccept') == 2")
  wait_for("the server to initialize", 120000, function()
    return lua("local c = require('quicksilver').client(); return c ~= nil and c.initialized")
  end)
  step("initialized")

  -- Type at the end of the line, in insert mode: TextChangedI -> debounce -> automatic request -> ghost text.
  vim.rpcrequest(child, "nvim_win_set_cursor", 0, { line + 1, 0 })
  vim.rpcrequest(child, "nvim_input", "A" .. os.getenv("QS_TYPE"))
  local shown = wait_for("a suggestion while typing", 180000, function() return lua(SUGGESTION) end)
  report.mode = lua("return vim.api.nvim_get_mode().mode")
  report.auto = shown
  report.extmarks = lua("return require('quicksilver.ghost').extmarks(0)")
  step("shown while typing")

  -- <C-]> dismisses: the extmark goes, the server hears quicksilver/didDismiss.
  vim.rpcrequest(child, "nvim_input", "<C-]>")
  wait_for("the dismissal", 10000, function()
    return lua(SUGGESTION) == nil and #lua("return require('quicksilver.ghost').extmarks(0)") == 0
  end)
  report.after_dismiss_text = lua("return vim.api.nvim_get_current_line()")
  step("dismissed")

  -- <M-\> asks now (InlineCompletionTriggerKind.Invoked); <Tab> inserts what is shown.
  vim.rpcrequest(child, "nvim_input", "<M-\\>")
  shown = wait_for("a suggestion on the trigger key", 180000, function() return lua(SUGGESTION) end)
  report.invoked = shown
  report.invoked_extmarks = lua("return require('quicksilver.ghost').extmarks(0)")
  report.before = lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")
  report.cursor_before = lua("return vim.api.nvim_win_get_cursor(0)")
  vim.rpcrequest(child, "nvim_input", "<Tab>")
  report.after = wait_for("the accepted text", 10000, function()
    local lines = lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")
    return not vim.deep_equal(lines, report.before) and lines or nil
  end)
  report.cursor_after = lua("return vim.api.nvim_win_get_cursor(0)")
  report.mode_after = lua("return vim.api.nvim_get_mode().mode")
  step("accepted")

  -- Leave insert mode and stop: the client shuts the server down.
  vim.rpcrequest(child, "nvim_input", "<Esc>")
  lua("require('quicksilver').stop()")
  report.stopped = vim.wait(30000, function() return lua("return #vim.lsp.get_active_clients()") == 0 end, 100)
  report.status = lua("return require('quicksilver').status()")
end

H.main(run)
