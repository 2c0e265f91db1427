set terminal pngcairo size 1000,500 noenhanced
set output 'docs/sim/dedup/dedup.png'
set datafile separator ','
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set ylabel 'mean completion, s'
set xtics rotate by -30
set title 'dedup (VDO) pools against plain pools (thesis Fig 24/25)'
set yrange [0:*]
plot 'docs/sim/dedup/bars.csv' every ::1 using 2:3:xtic(1) title 'dedup pools', 'docs/sim/dedup/bars-plain.csv' every ::1 using 2:3 title 'plain pools'
