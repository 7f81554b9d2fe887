;; A module with the allocation exports and memory but no run_e: the host must refuse it.
(module
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32)))
