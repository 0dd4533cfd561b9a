/* main.c - placeholder entry point; the command table comes with cli.c */
#include "config.h"
#include <stdio.h>
int main (void) { puts ("maildesk"); return 0; }
