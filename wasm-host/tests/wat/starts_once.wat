;; Starts once per VM id: `proxy_on_vm_start` succeeds while the shared-data key "started" is
;; absent (and sets it), and refuses afterwards, so every replacement instance fails to start.
;; Traps on every request, so the first request's fault asks for a replacement.
(module
  (import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "started")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    ;; status 0 (Ok): the key exists, an instance started before
    (if (i32.eqz (call $get_shared (i32.const 1024) (i32.const 7) (i32.const 512) (i32.const 516) (i32.const 520)))
      (then (return (i32.const 0))))
    (drop (call $set_shared (i32.const 1024) (i32.const 7) (i32.const 1024) (i32.const 1) (i32.const 0)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    unreachable))
