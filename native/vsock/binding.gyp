{
  "targets": [
    {
      "target_name": "vsock",
      "sources": ["src/vsock.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "libraries": ["-lpthread"],
      "conditions": [["OS!='linux'", {"type": "none", "sources!": ["src/vsock.c"]}]]
    }
  ]
}
