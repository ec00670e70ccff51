// Launcher arguments shared by the multi-process tests: one short training epoch.

/** One epoch of 60 ORL images in batches of 15 per rank, every rank saving its checkpoint. */
export function orlEpochArgs(out: string): string[] {
  return [
    "--timeout-s=120",
    "configs/orl_mbf.yaml",
    "--num_epoch=1",
    "--warmup_epoch=0",
    "--num_image=60",
    "--batch_size=15",
    "--val_targets=[]",
    "--save_all_states=true",
    `--output=${out}`,
  ];
}
