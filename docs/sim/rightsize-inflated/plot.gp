set terminal pngcairo size 1000,500 noenhanced
set output 'docs/sim/rightsize-inflated/completion.png'
set datafile separator ','
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set ylabel 'seconds'
set title 'completion'
set xtics rotate by -30
set key top left
set yrange [0:*]
plot 'docs/sim/rightsize-inflated/bars.csv' every ::1 using 2:3:xtic(1) title 'mean completion', '' every ::1 using 4:5 title 'p95 completion'
