//! diffusers schedulers: Euler, Euler ancestral, DPM++ 2M (Karras), DDIM, LCM.
