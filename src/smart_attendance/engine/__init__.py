"""The face engine: dlib detection and alignment, dlib's network on ONNX Runtime, the worker
pool and the in-process analyzer (both implement ``models.Analyzer``).

Nothing is imported here, so that the camera client can use ``dlib_engine`` without the
server's libraries (ONNX Runtime is imported only when a descriptor network is built).
"""
