#!/usr/bin/env bash
# The whole non-autoregressive recipe of the README's NAT table, step by step: distil, train the
# CMLM on distilled and on raw data, fine-tune it with each objective, warm-start CTC and GLAT, then
# measure every row in one run of bench/nat-table.ts. Each step is skipped when its model already
# exists, and an interrupted training run is resumed, so running it again continues where it
# stopped. Times are for a 2-core CPU (about 4 h in all); runs/ holds everything it writes.
#
#   bash bench/nat-recipe.sh            # everything, then the table (runs/nat-table-all.json)
#   bash bench/nat-recipe.sh table      # only the table, from the models already trained
set -euo pipefail
cd "$(dirname "$0")/.."
H="npx tsx scripts/hasten.ts"
RAW="${DATA_DIR:-../shared/data}/multi30k"
TOK=models/ar-de-en/tokenizer.json
CMLM=(--d-model 256 --heads 4 --ffn 1024 --enc-layers 3 --dec-layers 3 --lr 0.001 --warmup 400 --max-steps 1200
  --eval-every 500 --valid-bleu-limit 300 --checkpoint-every 100)

# train OUT FLAGS…: a new run, or the interrupted one resumed, or nothing when OUT/model exists.
train() {
  local out=$1; shift
  if [ -e "$out/model/config.json" ]; then echo "nat-recipe: $out done"; return; fi
  if [ -e "$out/checkpoint.safetensors" ]; then $H train --resume --out "$out"; else $H train --out "$out" "$@"; fi
}

steps() {
  $H distill --model models/ar-de-en --out runs/distill-de-en   # 13 min (resumes after a kill; done: nothing to do)
  for d in distill raw; do
    local data=runs/distill-de-en base=runs/cmlm-xe-distill pre=ft
    if [ $d = raw ]; then data=$RAW base=runs/cmlm-xe-raw pre=raw; fi
    train $base --task nat --model cmlm --data $data --tokenizer $TOK "${CMLM[@]}"                         # 76 min
    local ft=(--task nat --model cmlm --init $base/model --data $data --lr 5e-5 --warmup 30 --max-steps 100
      --eval-every 100 --valid-bleu-limit 300)                                                              # 7 min each
    train runs/$pre-oaxe "${ft[@]}" --loss oaxe --truncate 0.065
    train runs/$pre-xe "${ft[@]}" --loss xe
    train runs/$pre-axe "${ft[@]}" --loss axe
    train runs/$pre-ngram-oaxe "${ft[@]}" --loss ngram-oaxe --ngram 2 --truncate 0.065
    # CTC: a warm start from the CMLM (decoder length 2x the source); 2,048 tokens a batch fits the heap
    train runs/$pre-ctc --task nat --model ctc --loss ctc --init $base/model --data $data --max-tokens 2048 \
      --lr 2e-4 --warmup 50 --max-steps 200 --eval-every 200 --valid-bleu-limit 300                        # 11 min
  done
  train runs/ft-glat --task nat --model cmlm --init runs/cmlm-xe-distill/model --data runs/distill-de-en \
    --lr 5e-5 --warmup 30 --max-steps 100 --eval-every 100 --valid-bleu-limit 300 --loss xe --glance 0.3      # 9 min
}

table() {
  local nat="decoder=nat,length-beam=3" mp4="decoder=mask-predict,iterations=4,length-beam=3" mp10="decoder=mask-predict,iterations=10,length-beam=3"
  npx tsx bench/nat-table.ts --row="AR beam 5@models/ar-de-en@beam=5" --row="AR greedy@models/ar-de-en@beam=1" \
    --row="CMLM XE 1200@runs/cmlm-xe-distill/model@$nat" \
    --row="+100 XE@runs/ft-xe/model@$nat" --row="+100 GLAT (λ 0.3)@runs/ft-glat/model@$nat" \
    --row="+100 XE, mask-predict T=4@runs/ft-xe/model@$mp4" \
    --row="+100 AXE@runs/ft-axe/model@$nat" --row="+100 OAXE@runs/ft-oaxe/model@$nat" \
    --row="+100 bigram-OAXE (models/nat-de-en)@models/nat-de-en" \
    --row="+100 bigram-OAXE, length beam 1@models/nat-de-en@decoder=nat,length-beam=1" \
    --row="+100 OAXE, mask-predict T=4@runs/ft-oaxe/model@$mp4" --row="+100 OAXE, mask-predict T=10@runs/ft-oaxe/model@$mp10" \
    --row="CTC (warm start, +200)@runs/ft-ctc/model@decoder=ctc" \
    --row="raw: CMLM XE 1200@runs/cmlm-xe-raw/model@$nat" \
    --row="raw: +100 XE@runs/raw-xe/model@$nat" --row="raw: +100 AXE@runs/raw-axe/model@$nat" \
    --row="raw: +100 OAXE@runs/raw-oaxe/model@$nat" --row="raw: +100 bigram-OAXE@runs/raw-ngram-oaxe/model@$nat" \
    --row="raw: +100 OAXE, mask-predict T=4@runs/raw-oaxe/model@$mp4" \
    --row="raw: +100 OAXE, mask-predict T=10@runs/raw-oaxe/model@$mp10" \
    --row="raw: CTC (warm start, +200)@runs/raw-ctc/model@decoder=ctc" \
    --latency-sentences=50 --json=runs/nat-table-all.json                                                  # 10 min
}

case "${1:-all}" in
  all) steps; table ;;
  table) table ;;
  *) echo "usage: bash bench/nat-recipe.sh [all|table]" >&2; exit 2 ;;
esac
