#ifndef CDRIFTCHECK_SHIMS_H
#define CDRIFTCHECK_SHIMS_H
#include <spawn.h>

/// posix_spawn_file_actions_addchdir_np, which Swift's Glibc module does not export.
int driftcheck_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34): the child closes every descriptor
/// from `lowest` up.
int driftcheck_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowest);

#endif
