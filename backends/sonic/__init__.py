"""Sonic (jixiaozhong/Sonic): portrait + speech -> talking video with Stable Video Diffusion xt and audio adapters."""
