-- Unit checks of lua/quicksilver/ghost.lua's position arithmetic and extmark layout, in a real Neovim:
--   nvim --headless -u NONE -i NONE --cmd 'set rtp^=editors/neovim' -c 'luafile editors/neovim/test/units.lua'
-- Prints "N passed, 0 failed" and exits 0, or prints each failure and exits 1.
local ghost = require("quicksilver.ghost")
local passed, failed = 0, {}

local function check(name, got, want)
  if vim.deep_equal(got, want) then
    passed = passed + 1
  else
    table.insert(failed, ("%s: got %s, want %s"):format(name, vim.inspect(got), vim.inspect(want)))
  end
end

-- "a😀é|b": the emoji is 4 bytes and 2 UTF-16 units, é is 2 bytes and 1 unit.
local line = "a😀éb"
local before_b = #"a😀é" -- byte column 7
check("utf-16 units", ghost.units_from_byte(line, before_b, "utf-16"), 4)
check("utf-32 units", ghost.units_from_byte(line, before_b, "utf-32"), 3)
check("utf-8 units", ghost.units_from_byte(line, before_b, "utf-8"), 7)
check("utf-16 bytes", ghost.byte_from_units(line, 4, "utf-16"), before_b)
check("utf-32 bytes", ghost.byte_from_units(line, 3, "utf-32"), before_b)
check("past the end clamps", ghost.byte_from_units(line, 99, "utf-16"), #line)
check("ascii round trip", ghost.byte_from_units("    x = 1", ghost.units_from_byte("    x = 1", 6, "utf-16"), "utf-16"), 6)

check("split lines", ghost.split_lines("a\nb\r\nc"), { "a", "b", "c" })
check("end of one line", { ghost.end_of_insert(4, 10, { "abc" }) }, { 4, 13 })
check("end of several lines", { ghost.end_of_insert(4, 10, { "abc", "    return x" }) }, { 5, 12 })

local opts = ghost.extmark_opts("foo(bar)", 4, { "x, y", "next line" })
check("first line is virtual text", opts.virt_text[1], { "x, y", ghost.highlight })
check("further lines are virtual lines", opts.virt_lines, { { { "next line", ghost.highlight } } })
if vim.fn.has("nvim-0.10") == 0 then
  check("before 0.10: drawn over the rest of the line", opts.virt_text[2], { "bar)", "Normal" })
  check("before 0.10: overlay", opts.virt_text_pos, "overlay")
else
  check("0.10+: inline", opts.virt_text_pos, "inline")
end

-- Drawn in a real buffer, then cleared.
local bufnr = vim.api.nvim_create_buf(false, true)
vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "def f(x):", "    return " })
ghost.show(bufnr, 1, 11, "x + 1\n# done")
local marks = ghost.extmarks(bufnr)
check("one extmark", #marks, 1)
check("at the cursor", { marks[1][2], marks[1][3] }, { 1, 11 })
check("buffer untouched", vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), { "def f(x):", "    return " })
ghost.clear(bufnr)
check("cleared", #ghost.extmarks(bufnr), 0)

-- The server command: `--record-trace DIR` only when record_trace is set, with the directory made absolute.
local quicksilver = require("quicksilver")
local base = { python = "py", server_dir = "/qs", log_file = false }
check("no recording by default", quicksilver.server_command(base), { "py", "-m", "lsp_server" })
check("empty record_trace: off", quicksilver.server_command(vim.tbl_extend("force", base, { record_trace = "" })),
  { "py", "-m", "lsp_server" })
check("record_trace", quicksilver.server_command(vim.tbl_extend("force", base,
  { record_trace = "/no/such/qs-traces", log_file = "/l.log" })),
  { "py", "-m", "lsp_server", "--record-trace", "/no/such/qs-traces", "--log-file", "/l.log" })
check("relative record_trace is made absolute", quicksilver.server_command(vim.tbl_extend("force", base,
  { record_trace = "no-such-qs-traces" }))[5], vim.fn.getcwd() .. "/no-such-qs-traces")
local own = { "quicksilver-lsp" }
check("record_trace is added to a whole cmd", quicksilver.server_command({ cmd = own, record_trace = "/no/such/t" }),
  { "quicksilver-lsp", "--record-trace", "/no/such/t" })
check("the configured cmd is left alone", own, { "quicksilver-lsp" })

for _, failure in ipairs(failed) do
  io.stdout:write(failure .. "\n")
end
io.stdout:write(("%d passed, %d failed\n"):format(passed, #failed))
vim.cmd(#failed == 0 and "qall!" or "cquit 1")
