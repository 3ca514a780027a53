/*
 * What a container of a fraction pod on the real node really sees of GPUs, printed to its log once at start, then it
 * waits for SIGTERM (like pause.c). The test reads the pod's log; nothing here comes from the pod's annotations.
 *
 *   env NAME=VALUE        every NVIDIA_* and TESSERA_FAKE_GPU_* variable of its environment
 *   dev PATH c MAJ:MIN    every character or block device under /dev whose name starts with "nvidia"
 *   mount PATH            every mount point under /var/run/nvidia-container-devices (the toolkit's volume-mounts list;
 *                         /run/... when /var/run is a symlink)
 *   end
 *
 * Built static with gcc into a FROM-scratch image (test/node/build.ts), as the pause image is.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

extern char **environ;

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

int main(void) {
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "NVIDIA_", 7) == 0 || strncmp(*e, "TESSERA_FAKE_GPU_", 17) == 0) printf("env %s\n", *e);

  DIR *dev = opendir("/dev");
  if (dev) {
    struct dirent *d;
    while ((d = readdir(dev)) != NULL) {
      if (strncmp(d->d_name, "nvidia", 6) != 0) continue;
      char path[512];
      struct stat st;
      snprintf(path, sizeof path, "/dev/%s", d->d_name);
      if (lstat(path, &st) != 0) continue;
      if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
        printf("dev %s %c %u:%u\n", path, S_ISCHR(st.st_mode) ? 'c' : 'b', major(st.st_rdev), minor(st.st_rdev));
    }
    closedir(dev);
  }

  /* mountinfo's fifth field is the mount point (octal escapes for spaces are left as they are). */
  FILE *mi = fopen("/proc/self/mountinfo", "r");
  if (mi) {
    char line[4096];
    /* /var/run may be a symlink to /run in an image: runc then mounts at the resolved path. */
    const char *under[] = {"/var/run/nvidia-container-devices/", "/run/nvidia-container-devices/"};
    while (fgets(line, sizeof line, mi)) {
      char point[4096];
      if (sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1) continue;
      for (int i = 0; i < 2; i++)
        if (strncmp(point, under[i], strlen(under[i])) == 0) printf("mount %s\n", point);
    }
    fclose(mi);
  }
  printf("end\n");
  fflush(stdout);
  for (;;) pause();
}
