/* The pod sandbox ("pause") process of the real-node test cluster (scripts/kube-testenv.sh --kubelet): it holds
 * the pod's namespaces and does nothing until the kubelet stops the sandbox. The upstream image
 * (registry.k8s.io/pause) cannot be pulled on machines without a registry; this is the same behaviour in a few
 * lines, built statically (gcc -static) into an image of its own by scripts/images.sh. */
#include <signal.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    /* As PID 1 of the sandbox it must reap the zombies of processes that joined its PID namespace. */
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        pause();
    }
}
