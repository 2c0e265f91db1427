# bench/calibrate/plot.gp - plots of the calibration bench (gnuplot 5, pngcairo).
# Called by calibrate.sh:  gnuplot -e "dir='TSV_DIR'; out='OUT_DIR'" plot.gp
# TSV columns (fit.py --plot-dir): 1 E_Mi 2 log2E 3 u 4 z 5 s 6 c 7 L_nominal
# 8 L_meas 9 cost 10 mib_s 11 latency_us 12 pred_cost 13 pred_latency_us
# 14 nodiv_cost 15 nodiv_latency_us (the same terms refitted without the
# 1/max(0.05, 1-L) divisor: fit.py's diagnostic)
# Each figure: top, cost (CPU s per logical GiB) measured and as the fitted
# prior gives it at the same point; bottom, throughput (MiB/s) and latency
# (us per 4 KiB block, the proxy's), measured and latency's fitted prior.
# A userspace proxy of VDO's per-block work, not VDO.

set terminal pngcairo size 900,820 font ",10"
set datafile commentschars "#"
set grid
set key below horizontal box
set bmargin 7
set xlabel offset 0,0.3
emid = "16 Mi"
load dir."/labels.gp"
note = "userspace proxy of VDO's per-block work (not VDO)"

set style line 1 lc rgb "#1f77b4" pt 7 ps 1.2 lw 2
set style line 2 lc rgb "#1f77b4" dt 2 lw 2
set style line 3 lc rgb "#d62728" pt 5 ps 1.1 lw 2
set style line 4 lc rgb "#2ca02c" pt 9 ps 1.2 lw 2
set style line 5 lc rgb "#2ca02c" dt 2 lw 2
set style line 6 lc rgb "#1f77b4" dt 3 lw 1.5
set style line 7 lc rgb "#2ca02c" dt 3 lw 1.5

# ---------------------------------------------------------------- vs index size
set output out."/cost-vs-index.png"
set multiplot layout 2,1 title "Cost vs index size (u = 0.5, z = 0.05, compression off, no load)\n".note
set logscale x 2
set xlabel "index entries E (Mi)"
set ylabel "CPU s per GiB written"
set yrange [0:*]
plot dir."/index.tsv" u 1:9 w lp ls 1 t "measured cost", \
     ""               u 1:12 w l ls 2 t "fitted prior (at the measured L)", \
     ""               u 1:14 w l ls 6 t "refit without the load divisor"
set ylabel "MiB/s"
set y2label "latency, us per block"
set y2tics
set ytics nomirror
plot dir."/index.tsv" u 1:10 w lp ls 3 t "throughput (MiB/s)", \
     ""               u 1:11 axes x1y2 w lp ls 4 t "latency (us)", \
     ""               u 1:13 axes x1y2 w l ls 5 t "latency, fitted prior (measured L)", \
     ""               u 1:15 axes x1y2 w l ls 7 t "latency, refit without divisor"
unset multiplot
unset logscale x
unset y2tics
unset y2label
set ytics mirror

# ---------------------------------------------------------------- vs duplicate share
set output out."/cost-vs-dup.png"
set multiplot layout 2,1 title "Cost vs duplicate share (E = ".emid.", z = 0.05, compression off, no load)\n".note
set xlabel "duplicate share u"
set xrange [-0.02:0.92]
set ylabel "CPU s per GiB written"
plot dir."/dup.tsv" u 3:9 w lp ls 1 t "measured cost", \
     ""             u 3:12 w l ls 2 t "fitted prior (at the measured L)", \
     ""             u 3:14 w l ls 6 t "refit without the load divisor"
set ylabel "MiB/s"
set y2label "latency, us per block"
set y2tics
set ytics nomirror
plot dir."/dup.tsv" u 3:10 w lp ls 3 t "throughput (MiB/s)", \
     ""             u 3:11 axes x1y2 w lp ls 4 t "latency (us)", \
     ""             u 3:13 axes x1y2 w l ls 5 t "latency, fitted prior (measured L)", \
     ""             u 3:15 axes x1y2 w l ls 7 t "latency, refit without divisor"
unset multiplot
set xrange [*:*]
unset y2tics
unset y2label
set ytics mirror

# ---------------------------------------------------------------- vs load
set output out."/cost-vs-load.png"
set multiplot layout 2,1 title "Cost vs competing CPU load from stress-ng (E = ".emid.", u = 0.5, z = 0.05)\n".note
set xlabel "node CPU busy share excluding the proxy, measured (labels: stress-ng --cpu-load %)"
set xrange [0:1]
set ylabel "CPU s per GiB written"
plot dir."/load.tsv" u 8:9 w lp ls 1 t "measured cost", \
     ""              u 8:12 w l ls 2 t "fitted prior (at the measured L)", \
     ""              u 8:14 w l ls 6 t "refit without the load divisor", \
     ""              u 8:9:(sprintf("%d%%", $7)) w labels offset 0,1 notitle
set ylabel "MiB/s"
set y2label "latency, us per block"
set y2tics
set ytics nomirror
plot dir."/load.tsv" u 8:10 w lp ls 3 t "throughput (MiB/s)", \
     ""              u 8:11 axes x1y2 w lp ls 4 t "latency (us)", \
     ""              u 8:13 axes x1y2 w l ls 5 t "latency, fitted prior (measured L)", \
     ""              u 8:15 axes x1y2 w l ls 7 t "latency, refit without divisor"
unset multiplot
set xrange [*:*]
unset y2tics
unset y2label
set ytics mirror

# ---------------------------------------------------------------- fit vs measured
set output out."/fit-vs-measured.png"
set terminal pngcairo size 1100,520 font ",10"
set multiplot layout 1,2 title "Fitted prior vs measured, every point\n".note
set key inside top left box
set xlabel "measured cost, CPU s per GiB"
set ylabel "fitted prior's cost"
set xrange [0:*]
set yrange [0:*]
plot dir."/all.tsv" u ($6 == 0 ? $9 : NaN):12 w p pt 7 ps 1 lc rgb "#1f77b4" t "compression off", \
     ""              u ($6 > 0 ? $9 : NaN):12 w p pt 5 ps 1 lc rgb "#d62728" t "compression on", \
     x w l lc rgb "gray" dt 2 t "y = x"
set xlabel "measured latency, us per block"
set ylabel "fitted prior's latency"
plot dir."/all.tsv" u ($6 == 0 ? $11 : NaN):13 w p pt 7 ps 1 lc rgb "#1f77b4" t "compression off", \
     ""              u ($6 > 0 ? $11 : NaN):13 w p pt 5 ps 1 lc rgb "#d62728" t "compression on", \
     x w l lc rgb "gray" dt 2 t "y = x"
unset multiplot
