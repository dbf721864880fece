//! Expiry and removal: waiting for an installed exception to end, pruning expired ones,
//! revocation, and the signal flag that stops a wait.

use super::*;

/// Drops exceptions whose lifetime ended while no `apply` process was watching them
/// (it was killed): the program already refuses them; this frees their slots and entries
/// and records the expiry.
pub(super) fn prune_expired(
    st: &mut state::AttachmentState,
    handle: &mut loader::Attachment,
    config: &ApplyConfig,
    now: u64,
) -> Result<(), ExceptionError> {
    let fail = |e: loader::EnforceError| ExceptionError::Failed(e.to_string());
    let (expired, live): (Vec<ActiveException>, Vec<ActiveException>) =
        st.exceptions.drain(..).partition(|e| e.expires_unix <= now);
    st.exceptions = live;
    if expired.is_empty() {
        return Ok(());
    }
    for e in &expired {
        let used = handle
            .exception_slot(u32::from(e.slot))
            .map(|s| s.used)
            .unwrap_or(0);
        handle
            .set_exception_slot(u32::from(e.slot), ExceptionSlot::default())
            .map_err(fail)?;
        handle.forget_exception_sockets(e.slot).map_err(fail)?;
        config.audit.append(&record(
            "expire",
            None,
            json!({
                "token_id": e.token_id,
                "exception": e.exception,
                "attachment": st.name,
                "connections": used,
                "note": "expired while no apply process was running",
            }),
        ))?;
    }
    let trie = st.desired_trie().map_err(fail)?;
    handle.sync_rules(&trie).map_err(fail)?;
    state::save(st).map_err(fail)
}

/// Removes an installed token's rules and records the connections it opened.
/// `event` is `expire` or `revoke`. `held`: a handle opened while the token was installed;
/// its maps stay readable after the attachment's pins are gone (an `egc run` that ended),
/// so the count is exact even then.
pub fn remove(
    installed: &Installed,
    config: &ApplyConfig,
    event: &str,
) -> Result<u64, ExceptionError> {
    remove_with(installed, config, event, None)
}

pub(super) fn remove_with(
    installed: &Installed,
    config: &ApplyConfig,
    event: &str,
    held: Option<&mut loader::Attachment>,
) -> Result<u64, ExceptionError> {
    let fail = |e: loader::EnforceError| ExceptionError::Failed(e.to_string());
    let count = |slot: ExceptionSlot| match installed.claims.max_uses {
        Some(_) => slot.used.min(slot.max_uses),
        None => slot.used,
    };
    let mut used: Option<u64> = None;
    {
        let _state_lock = state::lock(&installed.attachment).map_err(fail)?;
        if let (Ok(mut st), Ok(mut handle)) = (
            state::load(&installed.attachment),
            loader::open(&installed.attachment),
        ) {
            // End the exception first: from here on the program refuses new connections
            // through the slot and the egress gate drops packets of those it opened.
            if let Ok(slot) = handle.exception_slot(u32::from(installed.slot)) {
                used = Some(count(slot));
            }
            handle
                .set_exception_slot(u32::from(installed.slot), ExceptionSlot::default())
                .map_err(fail)?;
            st.exceptions.retain(|e| e.slot != installed.slot);
            let trie = st.desired_trie().map_err(fail)?;
            handle.sync_rules(&trie).map_err(fail)?;
            handle
                .forget_exception_sockets(installed.slot)
                .map_err(fail)?;
            state::save(&st).map_err(fail)?;
        }
    }
    if used.is_none() {
        if let Some(handle) = held {
            if let Ok(slot) = handle.exception_slot(u32::from(installed.slot)) {
                used = Some(count(slot));
            }
        }
    }
    {
        let _ledger_lock = config.ledger.lock()?;
        let mut ledger = config.ledger.get(&installed.claims.id)?;
        match used {
            // The count is known: the reservation is replaced by it.
            Some(n) => ledger.used = ledger.used.saturating_add(n),
            // Unknown: every reserved use counts as spent (fail closed).
            None => ledger.used = ledger.used.saturating_add(ledger.reserved),
        }
        ledger.reserved = 0;
        ledger.active_in = None;
        config.ledger.put(&installed.claims.id, &ledger)?;
    }
    let used_text = used.map_or(Value::Null, |n| json!(n));
    config.audit.append(&record(
        event,
        Some(&installed.claims),
        json!({ "attachment": installed.attachment, "connections": used_text }),
    ))?;
    Ok(used.unwrap_or(0))
}

pub(super) static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag instead of killing the process, so `apply` can
/// revoke its entries and write the audit line.
pub fn stop_on_signals() -> &'static AtomicBool {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, on_stop_signal as *const () as libc::sighandler_t);
        }
    }
    &STOP
}

/// Waits until the token expires (or `stop` is set), then removes its rules.
/// Returns the number of connections opened through it.
pub fn wait_and_expire(
    installed: &Installed,
    config: &ApplyConfig,
    stop: &AtomicBool,
) -> Result<u64, ExceptionError> {
    // Held for the whole wait: when the attachment goes away, its maps stay readable
    // through this handle, so the connections the token opened are still counted.
    let mut held = loader::open(&installed.attachment).ok();
    loop {
        if state::now_unix() >= installed.claims.expires_at {
            return remove_with(installed, config, "expire", held.as_mut());
        }
        if stop.load(Ordering::SeqCst) {
            return remove_with(installed, config, "revoke", held.as_mut());
        }
        if !loader::list().contains(&installed.attachment) {
            // The attachment went away (detached, or `egc run` ended).
            return remove_with(installed, config, "expire", held.as_mut());
        }
        if !still_installed(installed) {
            // Ended by another process (`egc enforce step end`), which recorded it.
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the attachment's state still holds this installation.
pub(super) fn still_installed(installed: &Installed) -> bool {
    match state::load(&installed.attachment) {
        Ok(st) => st
            .exceptions
            .iter()
            .any(|e| e.slot == installed.slot && e.token_id == installed.claims.id),
        // Unreadable right now (being rewritten): assume it is.
        Err(_) => true,
    }
}

/// Finds an installed token by id in any attachment (for ending it from another
/// process).
pub fn find_installed(token_id: &str, claims: &Claims) -> Option<Installed> {
    for st in state::list() {
        if let Some(active) = st.exceptions.iter().find(|e| e.token_id == token_id) {
            return Some(Installed {
                claims: claims.clone(),
                attachment: st.name.clone(),
                slot: active.slot,
                rules: active.rules.clone(),
                names: active.names.clone(),
            });
        }
    }
    None
}
