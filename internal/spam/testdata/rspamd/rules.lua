-- Rules for the real-Rspamd test (rspamd_real_test.go): deterministic
-- scores chosen by the Subject, so every action of the default action
-- thresholds in the test's configuration can be produced, and a symbol
-- that echoes the envelope Rspamd received from us.

local function subject_has(s)
  return function(task)
    local h = task:get_header('Subject')
    return h ~= nil and h:find(s, 1, true) ~= nil
  end
end

rspamd_config.MS_TEST_SPAM = { callback = subject_has('score-7'), score = 7.0, description = 'add header' }
rspamd_config.MS_TEST_REWRITE = { callback = subject_has('score-12'), score = 12.0, description = 'rewrite subject' }
rspamd_config.MS_TEST_REJECT = { callback = subject_has('score-20'), score = 20.0, description = 'reject' }
rspamd_config.MS_TEST_GREY = { callback = subject_has('score-5'), score = 5.0, description = 'greylist' }

rspamd_config:register_symbol({
  name = 'MS_TEST_PRE',
  type = 'prefilter',
  priority = 10,
  callback = function(task)
    local h = task:get_header('Subject') or ''
    if h:find('softreject', 1, true) then
      task:set_pre_result('soft reject', 'Try again later, test')
    elseif h:find('prereject', 1, true) then
      task:set_pre_result('reject', 'Custom reject text')
    end
  end,
})

rspamd_config.MS_ENVELOPE = {
  callback = function(task)
    local opts = {}
    table.insert(opts, 'ip=' .. tostring(task:get_from_ip()))
    table.insert(opts, 'helo=' .. tostring(task:get_helo()))
    table.insert(opts, 'hostname=' .. tostring(task:get_hostname()))
    table.insert(opts, 'user=' .. tostring(task:get_user()))
    table.insert(opts, 'qid=' .. tostring(task:get_queue_id()))
    local f = task:get_from('smtp')
    if f and f[1] then
      table.insert(opts, 'from=' .. f[1].addr)
    else
      table.insert(opts, 'from=none')
    end
    local r = task:get_recipients('smtp')
    if r then
      for _, x in ipairs(r) do table.insert(opts, 'rcpt=' .. x.addr) end
    end
    return true, 1.0, opts
  end,
  score = 0.0,
}
