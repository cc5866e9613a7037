let _kernel_warm_up = Some(1u8).map(|x| x + 1).is_some();
