;; A runnable whose start function never returns: instantiating it must hit the time limit.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func $start (loop $forever (br $forever)))
  (start $start)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (call $return_result (local.get $ptr) (local.get $len) (local.get $ident))))
