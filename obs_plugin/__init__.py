"""PrivaStream's OBS side: the "PrivaStream Filter" (video) and "PrivaStream Audio Filter" types.

OBS loads `privastream_filter.py` as a script; it registers both filters through the ctypes
layer in `libobs.py`.  Nothing here runs inference: frames and audio go to the local inference
server through `inference_server.client.LiveClient`, and the filters draw or mute what it decides.
"""
