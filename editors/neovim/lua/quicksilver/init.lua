-- Quicksilver for Neovim 0.7+: starts `python -m lsp_server` with the built-in client (`vim.lsp.start_client`),
-- asks for `textDocument/inlineCompletion` while you type (debounced) or on a key, and shows the answer as ghost
-- text. On Neovim with native inline completion (`vim.lsp.inline_completion`, 0.12+) that draws it instead.
--
--   require("quicksilver").setup({ settings = { latencyBudgetMs = 150 } })
--
-- Insert mode: <Tab> accepts (else inserts a Tab), <C-]> dismisses, <M-\> asks now. See editors/neovim/README.md.
local ghost = require("quicksilver.ghost")

local M = {}
local uv = vim.uv or vim.loop

-- Client methods: `client.request(...)` up to 0.10, `client:request(...)` from 0.11 (the dot form is deprecated).
local colon_methods = vim.fn.has("nvim-0.11") == 1
local function call(client, method, ...)
  if colon_methods then
    return client[method](client, ...)
  end
  return client[method](...)
end

local defaults = {
  cmd = nil, -- the whole server command; nil: { python, "-m", "lsp_server" } run in server_dir
  python = nil, -- nil: server_dir/.venv/bin/python if it exists, else "python3"
  server_dir = nil, -- the Quicksilver checkout; nil: the one this plugin sits in (editors/neovim), if it is one
  log_file = vim.fn.stdpath("cache") .. "/quicksilver.log", -- the server's log (:QuicksilverLog); false: stderr, into Neovim's LSP log
  settings = {}, -- the server's settings: latencyBudgetMs, maxLines, enabledLanguages, backend, modelPath, logLevel
  record_trace = nil, -- a directory: the server records edits, requests and answers there for
  -- `python -m lsp_server replay` (`--record-trace DIR`); nil: off. Traces contain your code (files are mode 0600)
  filetypes = nil, -- nil: every file buffer; or a list such as { "python", "lua" }
  auto_trigger = true, -- ask while typing in insert mode; false: only on the trigger key
  debounce_ms = 75, -- wait after the last keystroke (the server debounces again, adaptively)
  native = true, -- use vim.lsp.inline_completion where Neovim has it
  keys = { accept = "<Tab>", dismiss = "<C-]>", trigger = "<M-\\>" }, -- false for any: no mapping
}

M.config = vim.deepcopy(defaults)
M.client_id = nil
local buffers = {} -- bufnr -> { suggestion = {...} | nil, request_id = n | nil, timer = uv timer | nil }
local group = nil

local function notify(message, level)
  vim.schedule(function() vim.notify("quicksilver: " .. message, level or vim.log.levels.INFO) end)
end

local function native_api()
  local ic = vim.lsp.inline_completion
  if M.config.native and type(ic) == "table" and type(ic.enable) == "function" and type(ic.get) == "function" then
    return ic
  end
  return nil
end

-- The checkout holding this file: editors/neovim/lua/quicksilver/init.lua -> four levels up.
local function own_checkout()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = vim.fn.fnamemodify(source, ":p:h:h:h:h:h")
  if vim.fn.filereadable(dir .. "/lsp_server/__main__.py") == 1 then
    return dir
  end
  return nil
end

-- `--record-trace DIR` (a global option of the server, so it goes before any subcommand; there is none here).
-- The directory is made absolute here: the server runs in the checkout, not in Neovim's current directory.
local function record_args(config)
  if type(config.record_trace) ~= "string" or config.record_trace == "" then
    return {}
  end
  return { "--record-trace", vim.fn.fnamemodify(config.record_trace, ":p") }
end

--- The server command and the folder it runs in.
function M.server_command(config)
  config = config or M.config
  local dir = config.server_dir or own_checkout()
  if config.cmd then
    return vim.list_extend(vim.deepcopy(config.cmd), record_args(config)), dir
  end
  local python = config.python
  if not python then
    local venv = dir and (dir .. "/.venv/bin/python") or nil
    python = (venv and vim.fn.executable(venv) == 1) and venv or "python3"
  end
  local cmd = { python, "-m", "lsp_server" }
  vim.list_extend(cmd, record_args(config))
  if config.log_file then
    vim.list_extend(cmd, { "--log-file", config.log_file })
  end
  return cmd, dir
end

function M.client()
  return M.client_id and vim.lsp.get_client_by_id(M.client_id) or nil
end

local function state(bufnr)
  buffers[bufnr] = buffers[bufnr] or {}
  return buffers[bufnr]
end

--- The suggestion shown in `bufnr` (nil when none): { text, row, col, id, command }.
function M.suggestion(bufnr)
  local s = buffers[bufnr or vim.api.nvim_get_current_buf()]
  return s and s.suggestion or nil
end

local function cancel_pending(bufnr)
  local s = state(bufnr)
  if s.timer then
    s.timer:stop()
  end
  local client = M.client()
  if s.request_id and client then
    call(client, "cancel_request", s.request_id)
  end
  s.request_id = nil
end

--- Hide the suggestion; `report` tells the server it was rejected (quicksilver/didDismiss).
function M.dismiss(bufnr, report)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local s = state(bufnr)
  cancel_pending(bufnr)
  local shown = s.suggestion
  s.suggestion = nil
  ghost.clear(bufnr)
  local client = M.client()
  if report and shown and shown.id and client then
    call(client, "notify", "quicksilver/didDismiss", { id = shown.id })
  end
  return shown ~= nil
end

local function cursor_position(client)
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local line = vim.api.nvim_buf_get_lines(0, row - 1, row, false)[1] or ""
  return row - 1, col, { line = row - 1, character = ghost.units_from_byte(line, col, client.offset_encoding) }
end

local function on_answer(bufnr, asked, err, result)
  local s = state(bufnr)
  if s.request_id == asked.id then
    s.request_id = nil -- (an older request's answer leaves the newer one's id alone)
  end
  if err then
    if err.code ~= -32800 then -- RequestCancelled is routine: a newer keystroke won
      notify("inline completion failed: " .. (err.message or vim.inspect(err)), vim.log.levels.WARN)
    end
    return
  end
  -- Stale: the buffer changed or the cursor moved while the model ran.
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_get_current_buf() ~= bufnr
      or vim.api.nvim_buf_get_changedtick(bufnr) ~= asked.tick then
    return
  end
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  if row - 1 ~= asked.row or col ~= asked.col then
    return
  end
  if asked.automatic and vim.api.nvim_get_mode().mode:sub(1, 1) ~= "i" then
    return -- typed, then left insert mode before the answer came
  end
  local items = result and (result.items or result) or {}
  local item = items[1]
  if not item or type(item.insertText) ~= "string" or item.insertText == "" then
    return
  end
  local start = item.range and item.range.start or { line = asked.row, character = asked.character }
  local line = vim.api.nvim_buf_get_lines(bufnr, start.line, start.line + 1, false)[1] or ""
  local start_col = ghost.byte_from_units(line, start.character, asked.encoding)
  local id = item.command and item.command.arguments and item.command.arguments[1] or nil
  s.suggestion = { text = item.insertText, row = start.line, col = start_col, id = id, command = item.command,
                   range = item.range, encoding = asked.encoding }
  ghost.show(bufnr, start.line, start_col, item.insertText)
end

--- Ask the server for a suggestion at the cursor. `automatic`: the user is typing (InlineCompletionTriggerKind 2).
function M.request(automatic)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.client()
  if not client or not client.initialized or not vim.lsp.buf_is_attached(bufnr, client.id) then
    return false
  end
  M.dismiss(bufnr, false)
  local row, col, position = cursor_position(client)
  local asked = { tick = vim.api.nvim_buf_get_changedtick(bufnr), row = row, col = col, automatic = automatic,
                  character = position.character, encoding = client.offset_encoding }
  local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) }, position = position,
                   context = { triggerKind = automatic and 2 or 1 } }
  local ok, request_id = call(client, "request", "textDocument/inlineCompletion", params, function(err, result)
    on_answer(bufnr, asked, err, result)
  end, bufnr)
  asked.id = ok and request_id or nil
  state(bufnr).request_id = asked.id
  return ok
end

--- Insert the suggestion shown in the current buffer; false when there is none.
function M.accept()
  local native = native_api()
  if native then
    return native.get() ~= false
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local shown = M.suggestion(bufnr)
  if not shown then
    return false
  end
  M.dismiss(bufnr, false)
  local lines = ghost.split_lines(shown.text)
  vim.api.nvim_buf_set_text(bufnr, shown.row, shown.col, shown.row, shown.col, lines)
  local end_row, end_col = ghost.end_of_insert(shown.row, shown.col, lines)
  vim.api.nvim_win_set_cursor(0, { end_row + 1, end_col })
  local client = M.client()
  if shown.command and client then -- quicksilver.accept <id>: counted in the server's log
    call(client, "request", "workspace/executeCommand",
      { command = shown.command.command, arguments = shown.command.arguments }, function() end, bufnr)
  end
  return true
end

local function schedule_request(bufnr)
  local s = state(bufnr)
  s.timer = s.timer or uv.new_timer()
  s.timer:stop()
  s.timer:start(M.config.debounce_ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_get_current_buf() == bufnr and vim.api.nvim_get_mode().mode:sub(1, 1) == "i" then
      M.request(true)
    end
  end))
end

local function press(keys)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), "n", false)
end

local function map_keys(bufnr, native)
  local keys = M.config.keys or {}
  if native then -- Neovim draws, requests and dismisses; only accepting needs a key
    keys = { accept = keys.accept }
  end
  if keys.accept then
    vim.keymap.set("i", keys.accept, function()
      if not M.accept() then press(keys.accept) end
    end, { buffer = bufnr, desc = "Quicksilver: accept the suggestion" })
  end
  if keys.dismiss then
    vim.keymap.set("i", keys.dismiss, function()
      if not M.dismiss(bufnr, true) then press(keys.dismiss) end
    end, { buffer = bufnr, desc = "Quicksilver: dismiss the suggestion" })
  end
  if keys.trigger then
    vim.keymap.set("i", keys.trigger, function() M.request(false) end,
      { buffer = bufnr, desc = "Quicksilver: suggest now" })
  end
end

local function watch(bufnr)
  vim.api.nvim_create_autocmd("TextChangedI", { group = group, buffer = bufnr, callback = function()
    M.dismiss(bufnr, false) -- the text moved on; the server's cache serves a typed-ahead suggestion fast
    if M.config.auto_trigger then schedule_request(bufnr) end
  end })
  vim.api.nvim_create_autocmd("CursorMovedI", { group = group, buffer = bufnr, callback = function()
    local shown = M.suggestion(bufnr)
    local row, col = unpack(vim.api.nvim_win_get_cursor(0))
    if shown and (row - 1 ~= shown.row or col ~= shown.col) then M.dismiss(bufnr, true) end
  end })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, { group = group, buffer = bufnr, callback = function()
    M.dismiss(bufnr, true)
  end })
  vim.api.nvim_create_autocmd({ "BufWipeout" }, { group = group, buffer = bufnr, callback = function()
    local s = buffers[bufnr]
    if s and s.timer then s.timer:close() end
    buffers[bufnr] = nil
  end })
end

local function wanted(bufnr)
  if vim.bo[bufnr].buftype ~= "" then
    return false
  end
  local filetypes = M.config.filetypes
  return filetypes == nil or vim.tbl_contains(filetypes, vim.bo[bufnr].filetype)
end

-- The server's settings as a JSON object: an empty Lua table would be sent as [] (the server wants an object).
local function server_settings()
  local settings = M.config.settings or {}
  return next(settings) == nil and vim.empty_dict() or settings
end

local function client_config()
  local cmd, dir = M.server_command()
  return {
    name = "quicksilver",
    cmd = cmd,
    cmd_cwd = dir,
    root_dir = uv.cwd(),
    init_options = server_settings(),
    settings = { quicksilver = server_settings() }, -- answers the server's workspace/configuration pull
    flags = { debounce_text_changes = 0 }, -- the request must see the keystroke that triggered it
    on_exit = function(code)
      if code ~= 0 then notify(("server exited with code %d, see :QuicksilverLog"):format(code), vim.log.levels.WARN) end
    end,
  }
end

--- Start the server (once) and attach `bufnr` to it; returns the client id.
local function start_and_attach(bufnr)
  local config = client_config()
  local client = M.client()
  if client and not call(client, "is_stopped") then
    vim.lsp.buf_attach_client(bufnr, client.id)
  elseif vim.lsp.start then -- 0.8+: start_client is deprecated from 0.11 on
    M.client_id = vim.lsp.start(config, { bufnr = bufnr })
  else
    M.client_id = vim.lsp.start_client(config)
    if M.client_id then
      vim.lsp.buf_attach_client(bufnr, M.client_id)
    end
  end
  if not M.client_id then
    notify("could not start " .. table.concat(config.cmd, " "), vim.log.levels.ERROR)
  end
  return M.client_id
end

--- Attach `bufnr` (default: current) to the server and set up ghost text for it.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if not wanted(bufnr) or state(bufnr).attached then
    return
  end
  if not start_and_attach(bufnr) then
    return
  end
  state(bufnr).attached = true
  local native = native_api()
  if native then
    native.enable(true, { bufnr = bufnr })
  else
    watch(bufnr)
  end
  map_keys(bufnr, native ~= nil)
end

--- Change server settings while it runs (workspace/didChangeConfiguration, section "quicksilver").
function M.configure(settings)
  M.config.settings = vim.tbl_extend("force", M.config.settings, settings or {})
  local client = M.client()
  if client then
    client.config.settings = { quicksilver = server_settings() }
    call(client, "notify", "workspace/didChangeConfiguration", { settings = { quicksilver = server_settings() } })
  end
end

function M.stop()
  for bufnr, _ in pairs(buffers) do
    M.dismiss(bufnr, false)
  end
  local client = M.client()
  if client then
    call(client, "stop")
  end
  M.client_id = nil
  buffers = {}
  if group then
    vim.api.nvim_clear_autocmds({ group = group })
  end
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  group = vim.api.nvim_create_augroup("quicksilver", { clear = true })
  vim.api.nvim_create_autocmd({ "FileType", "BufReadPost", "BufNewFile" }, { group = group, callback = function(args)
    M.attach(args.buf)
  end })
  M.attach(vim.api.nvim_get_current_buf())
end

--- One line for :QuicksilverStatus.
function M.status()
  local client = M.client()
  local shown = M.suggestion()
  local mode = native_api() and "native inline completion" or "ghost text (extmarks)"
  if not client then
    return "quicksilver: not running (call require('quicksilver').setup())"
  end
  return ("quicksilver: client %d %s, %s, suggestion: %s"):format(client.id,
    client.initialized and "running" or "starting", mode, shown and vim.inspect(shown.text) or "none")
end

return M
