;; Logs a CRITICAL line (as the Rust SDK's panic hook does) and traps on every request.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "panicked at trap.rs:7: wat-trap-marker")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $log (i32.const 5) (i32.const 1024) (i32.const 38)))
    unreachable))
