{
  "targets": [
    {
      "target_name": "tsrun",
      "sources": [
        "addon/addon.cc",
        "addon/args.cc",
        "addon/async.cc",
        "addon/capabilities.cc",
        "addon/clone.cc",
        "addon/clone_child.cc",
        "addon/clone_parent.cc",
        "addon/errors.cc",
        "addon/fds.cc",
        "addon/loop.cc",
        "addon/mounts.cc",
        "addon/namespaces.cc",
        "addon/pre_exec.cc",
        "addon/privileges.cc",
        "addon/process.cc",
        "addon/seccomp.cc"
      ],
      "libraries": ["-lseccomp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    },
    {
      "target_name": "tsrun-init",
      "type": "executable",
      "sources": ["addon/init/tsrun-init.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "ldflags": ["-static"]
    }
  ]
}
